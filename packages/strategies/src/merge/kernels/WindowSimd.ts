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
const i16x8 = (v: number) => op.v128Const(Array.from({ length: 16 }, (_, k) => (k & 1 ? v >>> 8 : v) & 0xff))
// Each address local += `by`.
const advance = (locals: ReadonlyArray<number>, by: number) => locals.flatMap((p) => Wasm.bump(p, by))
// A loop's tail: the step count in `local` decremented, back to the loop's start while it is not 0
// (a do-while: every helper takes steps ≥ 1; `Wasm.countDown` is the while form).
const countDown = (local: number) => [...op.localGet(local), ...op.i32Const(1), ...op.i32Sub, ...op.localTee(local), ...op.brIf(0)]

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
    ...advance([0], 16),
    ...advance([1], 32),
    ...countDown(2),
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
    ...advance([0], 32),
    ...advance([1], 16),
    ...countDown(2),
    ...op.end
  ]
}

// (src, steps) → 1 when a lane of the 16-byte vectors at src… has every bit of `exponent` (the splat
// constant) set — NaN or ±Inf — compared lane by lane with `eq`.
const nonFiniteScan = (name: string, exponent: Array<number>, eq: Array<number>): Wasm.Func => ({
  name,
  params: [Wasm.I32, Wasm.I32],
  results: [Wasm.I32],
  locals: [[1, Wasm.V128]],
  code: [
    ...op.loop,
    ...op.localGet(2), ...op.localGet(0), ...op.v128Load(0), ...exponent, ...op.v128And(), ...exponent, ...eq,
    ...op.v128Or(), ...op.localSet(2),
    ...advance([0], 16),
    ...countDown(1),
    ...op.end,
    ...op.localGet(2), ...op.v128AnyTrue()
  ]
})

/** nonfinite_f32(src, steps) → 1 when one of 4·steps float32 is NaN or ±Inf (exponent all ones). @category functions */
export const nonFiniteFunc: Wasm.Func = nonFiniteScan("nonfinite_f32", i32x4(0x7f800000), op.i32x4Eq())

/** nonfinite_bf16(src, steps) → 1 when one of 8·steps bf16 is NaN or ±Inf (exponent all ones). @category functions */
export const nonFiniteBf16Func: Wasm.Func = nonFiniteScan("nonfinite_bf16", i16x8(0x7f80), op.i16x8Eq())

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
    ...advance([0, 1, 2], 16),
    ...countDown(3),
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
  i32ShrU: [0x76],
  i32Shl: [0x74],
  i32Or: [0x72],
  i32LtU: [0x49]
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
      ...advance([3], 4),
      ...op.end
    ]),
    ...op.end,
    ...advance([0], 16),
    ...countDown(1),
    ...op.end,
    ...op.localGet(3), ...op.localGet(4), ...op.i32Sub, ...op.i32Const(2), ...scalar.i32ShrU
  ]
}

// The packed forms below read bf16 windows in place (a bf16 is the high half of its float32:
// `v128.load16x4_u` then a shift by 16 gives 4 exact float32 lanes), so no pass widens a window
// into float32 first. Their keys are `keys_f32`'s on the widened values, bit for bit.

// The |τ| keys of the 4 bf16 elements at the addresses in locals `x` and `base`, on the stack.
const keys4Bf16 = (x: number, base: number): Array<number> => [
  ...op.localGet(x), ...op.v128Load16x4U(0), ...op.i32Const(16), ...op.i32x4Shl(),
  ...op.localGet(base), ...op.v128Load16x4U(0), ...op.i32Const(16), ...op.i32x4Shl(),
  ...op.f32x4Sub(), ...i32x4(0x7fffffff), ...op.v128And()
]

const extractLane = (lane: number) => Wasm.simd(0x1b, lane)

/**
 * high_bf16(x, base, steps, counts): for 4·steps bf16 elements, adds 1 to the u32 count at
 * `counts + 4·(key >>> 16)` of each |τ| key — `Select.countHigh`'s histogram (32,768 buckets),
 * kept in this memory from window to window, so no key is stored and JavaScript counts nothing.
 *
 * @category functions
 */
export const highBf16Func: Wasm.Func = {
  name: "high_bf16",
  params: [Wasm.I32, Wasm.I32, Wasm.I32, Wasm.I32],
  results: [],
  locals: [[1, Wasm.I32], [1, Wasm.V128]],
  code: [
    // 4: a bucket's address, 5: the keys' high halves
    ...op.loop,
    ...keys4Bf16(0, 1), ...op.i32Const(16), ...op.i32x4ShrU(), ...op.localSet(5),
    ...[0, 1, 2, 3].flatMap((lane) => [
      ...op.localGet(5), ...extractLane(lane), ...op.i32Const(2), ...scalar.i32Shl, ...op.localGet(3), ...op.i32Add, ...op.localTee(4),
      ...op.localGet(4), ...scalar.i32Load(0), ...op.i32Const(1), ...op.i32Add, ...scalar.i32Store
    ]),
    ...advance([0, 1], 8),
    ...countDown(2),
    ...op.end
  ]
}

/**
 * above_low_bf16(x, base, steps, lows, first, span) → count: of the 4·steps bf16 elements' |τ|
 * keys, how many have a high half above `first + span − 1`, and for each whose high half h lies
 * in [first, first + span), 1 added to the u32 at `lows + 4·((h − first)·65536 + (key & 0xffff))`:
 * when the scan has guessed the buckets the cuts fall in, that is all the cuts need (the count
 * above and the low histograms of the candidate buckets) — two compares per 4 keys, the lanes
 * looked at only when one is in a candidate bucket, and no histogram of 32,768 buckets.
 *
 * @category functions
 */
export const aboveLowBf16Func: Wasm.Func = {
  name: "above_low_bf16",
  params: [Wasm.I32, Wasm.I32, Wasm.I32, Wasm.I32, Wasm.I32, Wasm.I32],
  results: [Wasm.I32],
  locals: [[2, Wasm.I32], [6, Wasm.V128]],
  code: [
    // 6: an address, 7: a key, 8: the keys, 9: their high halves, 10: first splat, 11: span splat, 12: top splat, 13: −(counts above)
    ...op.localGet(4), ...op.i32x4Splat(), ...op.localSet(10),
    ...op.localGet(5), ...op.i32x4Splat(), ...op.localSet(11),
    ...op.localGet(4), ...op.localGet(5), ...op.i32Add, ...op.i32Const(1), ...op.i32Sub, ...op.i32x4Splat(), ...op.localSet(12),
    ...op.loop,
    ...keys4Bf16(0, 1), ...op.localTee(8), ...op.i32Const(16), ...op.i32x4ShrU(), ...op.localTee(9),
    // High halves are < 2¹⁵: signed compares hold.
    ...op.localGet(12), ...op.i32x4GtS(), ...op.localGet(13), ...op.i32x4Add(), ...op.localSet(13),
    // (h − first) <u span on the lanes: rare, so the lanes are looked at only when one is.
    ...op.localGet(9), ...op.localGet(10), ...op.i32x4Sub(), ...op.localGet(11), ...Wasm.simd(0x3a) /* i32x4.lt_u */, ...op.v128AnyTrue(),
    ...scalar.if,
    ...[0, 1, 2, 3].flatMap((lane) => [
      ...op.localGet(8), ...extractLane(lane), ...op.localTee(7), ...op.i32Const(16), ...scalar.i32ShrU, ...op.localGet(4), ...op.i32Sub,
      ...op.localTee(6), ...op.localGet(5), ...scalar.i32LtU,
      ...scalar.if,
      ...op.localGet(6), ...op.i32Const(16), ...scalar.i32Shl, ...op.localGet(7), ...op.i32Const(0xffff), ...scalar.i32And, ...scalar.i32Or,
      ...op.i32Const(2), ...scalar.i32Shl, ...op.localGet(3), ...op.i32Add, ...op.localTee(6),
      ...op.localGet(6), ...scalar.i32Load(0), ...op.i32Const(1), ...op.i32Add, ...scalar.i32Store,
      ...op.end
    ]),
    ...op.end,
    ...advance([0, 1], 8),
    ...countDown(2),
    ...op.end,
    ...op.i32Const(0),
    ...[0, 1, 2, 3].flatMap((lane) => [...op.localGet(13), ...extractLane(lane), ...op.i32Sub])
  ]
}

/**
 * select_low_bf16(x, base, dst, steps, high) → count: `select_low` on the |τ| keys of 4·steps
 * bf16 elements, computed here (none stored): the low halves of the keys whose high half is
 * `high`, in order, written from `dst` on (u32 each).
 *
 * @category functions
 */
export const selectLowBf16Func: Wasm.Func = {
  name: "select_low_bf16",
  params: [Wasm.I32, Wasm.I32, Wasm.I32, Wasm.I32, Wasm.I32],
  results: [Wasm.I32],
  locals: [[2, Wasm.I32], [2, Wasm.V128]],
  code: [
    // 5: first address, 6: a key, 7: the keys, 8: high << 16 splat
    ...op.localGet(2), ...op.localSet(5),
    ...op.localGet(4), ...op.i32Const(16), ...scalar.i32Shl, ...op.i32x4Splat(), ...op.localSet(8),
    ...op.loop,
    ...keys4Bf16(0, 1), ...op.localTee(7), ...i32x4(0xffff0000 | 0), ...op.v128And(), ...op.localGet(8), ...op.i32x4Eq(), ...op.v128AnyTrue(),
    ...scalar.if,
    ...[0, 1, 2, 3].flatMap((lane) => [
      ...op.localGet(7), ...extractLane(lane), ...op.localTee(6), ...op.i32Const(16), ...scalar.i32ShrU, ...op.localGet(4), ...scalar.i32Eq,
      ...scalar.if,
      ...op.localGet(2), ...op.localGet(6), ...op.i32Const(0xffff), ...scalar.i32And, ...scalar.i32Store,
      ...advance([2], 4),
      ...op.end
    ]),
    ...op.end,
    ...advance([0, 1], 8),
    ...countDown(3),
    ...op.end,
    ...op.localGet(2), ...op.localGet(5), ...op.i32Sub, ...op.i32Const(2), ...scalar.i32ShrU
  ]
}

/** equal_bf16(x, base, steps, bits) → how many of the 4·steps bf16 elements' |τ| keys equal `bits` (`nthEqual`'s count). @category functions */
export const equalBf16Func: Wasm.Func = {
  name: "equal_bf16",
  params: [Wasm.I32, Wasm.I32, Wasm.I32, Wasm.I32],
  results: [Wasm.I32],
  locals: [[2, Wasm.V128]],
  code: [
    // 4: per-lane counts (minus the −1 masks), 5: bits splat
    ...op.localGet(3), ...op.i32x4Splat(), ...op.localSet(5),
    ...op.loop,
    ...op.localGet(4), ...keys4Bf16(0, 1), ...op.localGet(5), ...op.i32x4Eq(), ...op.i32x4Sub(), ...op.localSet(4),
    ...advance([0, 1], 8),
    ...countDown(2),
    ...op.end,
    ...op.localGet(4), ...extractLane(0), ...op.localGet(4), ...extractLane(1), ...op.i32Add,
    ...op.localGet(4), ...extractLane(2), ...op.i32Add, ...op.localGet(4), ...extractLane(3), ...op.i32Add
  ]
}

/** The helpers, for a module's function list. @category constructors */
export const funcs: ReadonlyArray<Wasm.Func> = [
  widenFunc, narrowFunc, nonFiniteFunc, keysFunc, selectLowFunc, nonFiniteBf16Func, highBf16Func, aboveLowBf16Func, selectLowBf16Func, equalBf16Func
]

