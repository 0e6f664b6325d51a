/**
 * The window helpers of the range-wise passes in WebAssembly SIMD, compiled into `TiesSimd.ts`'s
 * module (same private memory): bf16 → float32 widening, float32 → bf16 encoding (the bytes of
 * `PackedInput.encodeBF16`), a NaN/±Inf check and the |τ| keys of the histogram passes
 * (`Select.forEachKeyChunk`'s). Each takes byte addresses and a step count ≥ 1; callers run the
 * tail of fewer elements than a step in JavaScript.
 *
 * @since 0.1.0
 */
import * as Wasm from "./Wasm.ts"

const { op } = Wasm

const i32x4 = (v: number) => op.v128Const(Wasm.i32x4Bytes(v))

// Interleaves the 16-bit lanes of zero (a) and the bf16 halves (b): each float32 lane is b << 16.
// These are the byte patterns of x86's punpcklwd / punpckhwd, which V8 emits for them.
const UNPACK_LOW = [0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23]
const UNPACK_HIGH = [8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31]

/** widen_bf16(src, dst, steps): 8 bf16 → 8 float32 per step (the high halves: exact), one load and two unpacks. @category functions */
export const widenFunc: Wasm.Func = {
  name: "widen_bf16",
  params: [Wasm.I32, Wasm.I32, Wasm.I32],
  results: [],
  locals: [[2, Wasm.V128]],
  code: [
    ...op.loop,
    ...op.localGet(0), ...op.v128Load(0), ...op.localSet(3),
    ...op.localGet(1), ...op.localGet(4), ...op.localGet(3), ...op.shuffle(UNPACK_LOW), ...op.v128Store(0),
    ...op.localGet(1), ...op.localGet(4), ...op.localGet(3), ...op.shuffle(UNPACK_HIGH), ...op.v128Store(16),
    ...op.localGet(0), ...op.i32Const(16), ...op.i32Add, ...op.localSet(0),
    ...op.localGet(1), ...op.i32Const(32), ...op.i32Add, ...op.localSet(1),
    ...op.localGet(2), ...op.i32Const(1), ...op.i32Sub, ...op.localTee(2), ...op.brIf(0),
    ...op.end
  ]
}

// bf16 bits of the float32 on the stack (as `PackedInput.encodeBF16`): bits + 0x7fff + lsb, >> 16;
// NaN → its high half with the quiet bit.
const encode4 = (t: number): Array<number> => [
  ...op.localSet(t),
  ...op.localGet(t), ...op.i32Const(16), ...op.i32x4ShrU(), ...i32x4(0x40), ...op.v128Or(),
  ...op.localGet(t), ...i32x4(0x7fff), ...op.i32x4Add(),
  ...op.localGet(t), ...op.i32Const(16), ...op.i32x4ShrU(), ...i32x4(1), ...op.v128And(), ...op.i32x4Add(), ...op.i32Const(16), ...op.i32x4ShrU(),
  ...op.localGet(t), ...i32x4(0x7fffffff), ...op.v128And(), ...i32x4(0x7f800000), ...op.i32x4GtS(),
  ...op.v128Bitselect()
]

/** narrow_bf16(src, dst, steps): 8 float32 → 8 bf16 per step. @category functions */
export const narrowFunc: Wasm.Func = {
  name: "narrow_bf16",
  params: [Wasm.I32, Wasm.I32, Wasm.I32],
  results: [],
  locals: [[1, Wasm.V128]],
  code: [
    ...op.loop,
    ...op.localGet(1),
    ...op.localGet(0), ...op.v128Load(0), ...encode4(3), ...op.localGet(0), ...op.v128Load(16), ...encode4(3),
    ...op.i16x8NarrowI32x4U(), ...op.v128Store(0),
    ...op.localGet(0), ...op.i32Const(32), ...op.i32Add, ...op.localSet(0),
    ...op.localGet(1), ...op.i32Const(16), ...op.i32Add, ...op.localSet(1),
    ...op.localGet(2), ...op.i32Const(1), ...op.i32Sub, ...op.localTee(2), ...op.brIf(0),
    ...op.end
  ]
}

/** nonfinite_f32(src, steps) → 1 when one of 4·steps float32 is NaN or ±Inf (exponent all ones). @category functions */
export const nonFiniteFunc: Wasm.Func = {
  name: "nonfinite_f32",
  params: [Wasm.I32, Wasm.I32],
  results: [Wasm.I32],
  locals: [[1, Wasm.V128]],
  code: [
    ...op.loop,
    ...op.localGet(2), ...op.localGet(0), ...op.v128Load(0), ...i32x4(0x7f800000), ...op.v128And(), ...i32x4(0x7f800000), ...op.i32x4Eq(),
    ...op.v128Or(), ...op.localSet(2),
    ...op.localGet(0), ...op.i32Const(16), ...op.i32Add, ...op.localSet(0),
    ...op.localGet(1), ...op.i32Const(1), ...op.i32Sub, ...op.localTee(1), ...op.brIf(0),
    ...op.end,
    ...op.localGet(2), ...op.v128AnyTrue()
  ]
}

/** keys_f32(x, base, dst, steps): dst = bits(x − base) & 0x7fffffff, 4 per step. @category functions */
export const keysFunc: Wasm.Func = {
  name: "keys_f32",
  params: [Wasm.I32, Wasm.I32, Wasm.I32, Wasm.I32],
  results: [],
  locals: [],
  code: [
    ...op.loop,
    ...op.localGet(2), ...op.localGet(0), ...op.v128Load(0), ...op.localGet(1), ...op.v128Load(0), ...op.f32x4Sub(),
    ...i32x4(0x7fffffff), ...op.v128And(), ...op.v128Store(0),
    ...[0, 1, 2].flatMap((p) => [...op.localGet(p), ...op.i32Const(16), ...op.i32Add, ...op.localSet(p)]),
    ...op.localGet(3), ...op.i32Const(1), ...op.i32Sub, ...op.localTee(3), ...op.brIf(0),
    ...op.end
  ]
}

// Scalar instructions only this helper needs (Wasm.ts's `op` has the SIMD ones): binary opcodes.
const scalar = {
  i32Load: (offset: number) => [0x28, 2, ...Wasm.uleb(offset)],
  i32Store: [0x36, 2, 0],
  if: [0x04, 0x40],
  i32Eq: [0x46],
  i32And: [0x71],
  i32ShrU: [0x76]
}

/**
 * select_low(keys, steps, high) → count: of the 4·steps |τ| keys at `keys`, the low halves
 * (`key & 0xffff`) of those whose high half is `high`, written in order from `keys` on (in place:
 * a lane is read before anything is written over it) — the keys `Select.countLow` counts. Groups
 * of 4 with no match (nearly all: one high bucket of 65,536) cost one compare.
 *
 * @category functions
 */
export const selectLowFunc: Wasm.Func = {
  name: "select_low",
  params: [Wasm.I32, Wasm.I32, Wasm.I32],
  results: [Wasm.I32],
  locals: [[3, Wasm.I32], [1, Wasm.V128]],
  code: [
    // 3: write address, 4: first address, 5: key, 6: high splat
    ...op.localGet(0), ...op.localTee(3), ...op.localSet(4),
    ...op.localGet(2), ...op.i32x4Splat(), ...op.localSet(6),
    ...op.loop,
    ...op.localGet(0), ...op.v128Load(0), ...op.i32Const(16), ...op.i32x4ShrU(), ...op.localGet(6), ...op.i32x4Eq(), ...op.v128AnyTrue(),
    ...scalar.if,
    ...[0, 1, 2, 3].flatMap((lane) => [
      ...op.localGet(0), ...scalar.i32Load(lane * 4), ...op.localTee(5), ...op.i32Const(16), ...scalar.i32ShrU, ...op.localGet(2), ...scalar.i32Eq,
      ...scalar.if,
      ...op.localGet(3), ...op.localGet(5), ...op.i32Const(0xffff), ...scalar.i32And, ...scalar.i32Store,
      ...op.localGet(3), ...op.i32Const(4), ...op.i32Add, ...op.localSet(3),
      ...op.end
    ]),
    ...op.end,
    ...op.localGet(0), ...op.i32Const(16), ...op.i32Add, ...op.localSet(0),
    ...op.localGet(1), ...op.i32Const(1), ...op.i32Sub, ...op.localTee(1), ...op.brIf(0),
    ...op.end,
    ...op.localGet(3), ...op.localGet(4), ...op.i32Sub, ...op.i32Const(2), ...scalar.i32ShrU
  ]
}

/** The helpers, for a module's function list. @category constructors */
export const funcs: ReadonlyArray<Wasm.Func> = [widenFunc, narrowFunc, nonFiniteFunc, keysFunc, selectLowFunc]
