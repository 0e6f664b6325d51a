/**
 * The GEMM's WebAssembly module, assembled in code (`merge/kernels/Wasm.ts`'s encoder; nothing
 * is downloaded or compiled by a toolchain). It imports one shared memory and exports:
 *
 * - `block(pa, pb, c, ldc, kc, flags, bias, mPanels, nPanels, paStride, pbStride)`: for each of
 *   `nPanels` packed panels of B (8 columns × kc, k-major) and each of `mPanels` packed panels of
 *   A (`MR` rows × kc, k-major), the register-blocked `MR`×8 micro-kernel: `2·MR` f32x4
 *   accumulators, one splat of A per row and two loads of B per k. The tile is then stored into C
 *   (row stride `ldc` bytes), added to what C holds when `flags & 1` (the later k-chunks of a
 *   cache-blocked product), with the 8 floats at `bias` (advanced by 32 bytes per panel) added
 *   when `flags & 2`, and clamped at zero (ReLU) when `flags & 4`.
 * - `pack(src, outer, inner, dst, lanes, count, width, step)`: `dst[n·step + 4l] = src[l·outer + n·inner]`
 *   (all in bytes) for lanes `l < lanes`, zero for `lanes ≤ l < width`, `n < count`: the panel
 *   packing of A (width `MR`, step 4·MR) and of B (width and step 8, 32) for any layout,
 *   transposed included; and, with width = lanes, a tile of a transpose.
 * - `copy(src, inner, dst, count, width)`: the same when a panel's lanes are contiguous floats
 *   (width a multiple of 4): f32x4 copies (B as stored, Aᵀ as stored).
 * - `pack4(src, outer, dst, blocks, step)`: the same for 4 lanes whose elements are contiguous
 *   (inner 4 bytes: A as stored, Bᵀ as stored), 4×4 blocks at a time: four f32x4 loads, a 4×4
 *   transpose in eight shuffles, four stores `step` bytes apart.
 *
 * The multiply-add is `f32x4.relaxed_madd` where the runtime has relaxed SIMD (an FMA on x86
 * with FMA3, Node ≥ 22), else `f32x4.mul` then `f32x4.add`: results differ in the last bits
 * between the two and from XNNPACK's, which is why tests compare with a float64 reference.
 *
 * @since 0.1.0
 */
import * as Wasm from "../../merge/kernels/Wasm.ts"

/** Rows of the micro-kernel's tile (its columns are 8: two f32x4). @category constants */
export const MR = 4
/** Columns of the micro-kernel's tile. @category constants */
export const NR = 8

/** Flags of `block`. @category constants */
export const ACCUMULATE = 1, BIAS = 2, RELU = 4

/** The exports, bound to one memory. @category models */
export interface Exports {
  readonly block: (pa: number, pb: number, c: number, ldc: number, kc: number, flags: number, bias: number, mPanels: number, nPanels: number, paStride: number, pbStride: number) => void
  readonly pack: (src: number, outer: number, inner: number, dst: number, lanes: number, count: number, width: number, step: number) => void
  readonly copy: (src: number, inner: number, dst: number, count: number, width: number) => void
  readonly pack4: (src: number, outer: number, dst: number, blocks: number, step: number) => void
}

const { I32, V128, simd, memarg } = Wasm
const o = {
  ...Wasm.op,
  i32Mul: [0x6c],
  i32And: [0x71],
  i32LtU: [0x49],
  if: [0x04, 0x40],
  else: [0x05],
  f32Load: (offset = 0) => [0x2a, ...memarg(2, offset)],
  f32Store: (offset = 0) => [0x38, ...memarg(2, offset)],
  f32Const0: [0x43, 0, 0, 0, 0],
  v128Zero: simd(0x0c, ...Array<number>(16).fill(0)),
  f32x4Max: simd(0xe9),
  relaxedMadd: simd(0x105)
}

const { bump, countDown } = Wasm
/** `while (i < n) { body; i++ }` with `i` set to 0 first. */
const forUp = (i: number, n: number, body: ReadonlyArray<number>): Array<number> => [
  ...o.i32Const(0),
  ...o.localSet(i),
  ...o.block,
  ...o.loop,
  ...o.localGet(i),
  ...o.localGet(n),
  ...o.i32GeU,
  ...o.brIf(1),
  ...body,
  ...bump(i, 1),
  ...o.br(0),
  ...o.end,
  ...o.end
]

const blockFunc = (fma: boolean): Wasm.Func => {
  const pa = 0, pb = 1, c = 2, ldc = 3, kc = 4, flags = 5, bias = 6, mPanels = 7, nPanels = 8, paStride = 9, pbStride = 10
  const j = 11, i = 12, a = 13, b = 14, k = 15, cp = 16, bp = 17
  const acc = (r: number, h: number) => 18 + r * 2 + h
  const bv0 = 18 + 2 * MR, bv1 = bv0 + 1, av = bv0 + 2
  const madd = (target: number, bv: number): Array<number> =>
    fma
      ? [...o.localGet(av), ...o.localGet(bv), ...o.localGet(target), ...o.relaxedMadd, ...o.localSet(target)]
      : [...o.localGet(av), ...o.localGet(bv), ...o.f32x4Mul(), ...o.localGet(target), ...o.f32x4Add(), ...o.localSet(target)]
  const kBody: Array<number> = [...o.localGet(b), ...o.v128Load(0), ...o.localSet(bv0), ...o.localGet(b), ...o.v128Load(16), ...o.localSet(bv1)]
  for (let r = 0; r < MR; r++) {
    kBody.push(...o.localGet(a), ...o.v128Load32Splat(r * 4), ...o.localSet(av))
    kBody.push(...madd(acc(r, 0), bv0), ...madd(acc(r, 1), bv1))
  }
  kBody.push(...bump(a, MR * 4), ...bump(b, NR * 4))
  // Each accumulator, in turn, through `f(row, half)` (which leaves the new value on the stack).
  const each = (f: (r: number, h: number) => Array<number>): Array<number> => {
    const out: Array<number> = []
    for (let r = 0; r < MR; r++) for (let h = 0; h < 2; h++) out.push(...f(r, h), ...o.localSet(acc(r, h)))
    return out
  }
  // The address of row r of the tile: cp + r·ldc.
  const row = (r: number) => (r === 0 ? o.localGet(cp) : [...o.localGet(cp), ...o.localGet(ldc), ...o.i32Const(r), ...o.i32Mul, ...o.i32Add])
  const flag = (bit: number, body: Array<number>) => [...o.localGet(flags), ...o.i32Const(bit), ...o.i32And, ...o.if, ...body, ...o.end]
  const tile: Array<number> = [
    // a = pa + i·paStride, b = pb + j·pbStride, k = kc
    ...o.localGet(pa), ...o.localGet(i), ...o.localGet(paStride), ...o.i32Mul, ...o.i32Add, ...o.localSet(a),
    ...o.localGet(pb), ...o.localGet(j), ...o.localGet(pbStride), ...o.i32Mul, ...o.i32Add, ...o.localSet(b),
    ...o.localGet(kc), ...o.localSet(k),
    ...each(() => o.v128Zero),
    ...countDown(k, kBody),
    // cp = c + i·MR·ldc + j·32
    ...o.localGet(c), ...o.localGet(i), ...o.i32Const(MR), ...o.i32Mul, ...o.localGet(ldc), ...o.i32Mul, ...o.i32Add,
    ...o.localGet(j), ...o.i32Const(NR * 4), ...o.i32Mul, ...o.i32Add, ...o.localSet(cp),
    ...flag(1, each((r, h) => [...o.localGet(acc(r, h)), ...row(r), ...o.v128Load(h * 16), ...o.f32x4Add()])),
    ...flag(2, each((r, h) => [...o.localGet(acc(r, h)), ...o.localGet(bp), ...o.v128Load(h * 16), ...o.f32x4Add()])),
    ...flag(4, each((r, h) => [...o.localGet(acc(r, h)), ...o.v128Zero, ...o.f32x4Max])),
  ]
  for (let r = 0; r < MR; r++) for (let h = 0; h < 2; h++) tile.push(...row(r), ...o.localGet(acc(r, h)), ...o.v128Store(h * 16))
  const code: Array<number> = [
    // bp = bias + j·32 is advanced with j
    ...o.localGet(bias), ...o.localSet(bp),
    ...forUp(j, nPanels, [...forUp(i, mPanels, tile), ...bump(bp, NR * 4)])
  ]
  return {
    name: "block",
    params: Array<number>(11).fill(I32),
    results: [],
    locals: [[7, I32], [2 * MR + 3, V128]],
    code
  }
}

const packFunc = (): Wasm.Func => {
  const src = 0, outer = 1, inner = 2, dst = 3, lanes = 4, count = 5, width = 6, step = 7
  const l = 8, p = 9, q = 10, n = 11
  const code: Array<number> = [
    ...forUp(l, width, [
      ...o.localGet(dst), ...o.localGet(l), ...o.i32Const(4), ...o.i32Mul, ...o.i32Add, ...o.localSet(q),
      ...o.localGet(count), ...o.localSet(n),
      ...o.localGet(l), ...o.localGet(lanes), ...o.i32LtU,
      ...o.if,
      ...o.localGet(src), ...o.localGet(l), ...o.localGet(outer), ...o.i32Mul, ...o.i32Add, ...o.localSet(p),
      ...countDown(n, [...o.localGet(q), ...o.localGet(p), ...o.f32Load(), ...o.f32Store(), ...bump(p, o.localGet(inner)), ...bump(q, o.localGet(step))]),
      ...o.else,
      ...countDown(n, [...o.localGet(q), ...o.f32Const0, ...o.f32Store(), ...bump(q, o.localGet(step))]),
      ...o.end
    ])
  ]
  return { name: "pack", params: Array<number>(8).fill(I32), results: [], locals: [[4, I32]], code }
}

// Float lanes of a shuffle as its 16 byte indices (second operand: floats 4–7).
const lanes = (floats: ReadonlyArray<number>): Array<number> => floats.flatMap((f) => [4 * f, 4 * f + 1, 4 * f + 2, 4 * f + 3])

const pack4Func = (): Wasm.Func => {
  const src = 0, outer = 1, dst = 2, blocks = 3, step = 4
  const s1 = 5, s2 = 6, s3 = 7
  const v = (i: number) => 8 + i, t = (i: number) => 12 + i
  const load = (ptr: number, into: number) => [...o.localGet(ptr), ...o.v128Load(0), ...o.localSet(into)]
  const shuffle = (a: number, b: number, floats: ReadonlyArray<number>) => [...o.localGet(a), ...o.localGet(b), ...o.shuffle(lanes(floats))]
  const store = (j: number, a: number, b: number, floats: ReadonlyArray<number>) => [
    ...o.localGet(dst), ...(j === 0 ? [] : [...o.localGet(step), ...o.i32Const(j), ...o.i32Mul, ...o.i32Add]),
    ...shuffle(a, b, floats), ...o.v128Store(0)
  ]
  const code: Array<number> = [
    ...o.localGet(src), ...o.localGet(outer), ...o.i32Add, ...o.localSet(s1),
    ...o.localGet(s1), ...o.localGet(outer), ...o.i32Add, ...o.localSet(s2),
    ...o.localGet(s2), ...o.localGet(outer), ...o.i32Add, ...o.localSet(s3),
    ...countDown(blocks, [
      ...load(src, v(0)), ...load(s1, v(1)), ...load(s2, v(2)), ...load(s3, v(3)),
      ...shuffle(v(0), v(1), [0, 4, 1, 5]), ...o.localSet(t(0)),
      ...shuffle(v(0), v(1), [2, 6, 3, 7]), ...o.localSet(t(1)),
      ...shuffle(v(2), v(3), [0, 4, 1, 5]), ...o.localSet(t(2)),
      ...shuffle(v(2), v(3), [2, 6, 3, 7]), ...o.localSet(t(3)),
      ...store(0, t(0), t(2), [0, 1, 4, 5]), ...store(1, t(0), t(2), [2, 3, 6, 7]),
      ...store(2, t(1), t(3), [0, 1, 4, 5]), ...store(3, t(1), t(3), [2, 3, 6, 7]),
      ...bump(src, 16), ...bump(s1, 16), ...bump(s2, 16), ...bump(s3, 16),
      ...bump(dst, [...o.localGet(step), ...o.i32Const(4), ...o.i32Mul])
    ])
  ]
  return { name: "pack4", params: Array<number>(5).fill(I32), results: [], locals: [[3, I32], [8, V128]], code }
}

const copyFunc = (): Wasm.Func => {
  const src = 0, inner = 1, dst = 2, count = 3, width = 4
  const v = 5, bytes = 6
  const code: Array<number> = [
    ...o.localGet(width), ...o.i32Const(4), ...o.i32Mul, ...o.localSet(bytes),
    ...countDown(count, [
      ...o.i32Const(0), ...o.localSet(v),
      ...o.block, ...o.loop,
      ...o.localGet(v), ...o.localGet(bytes), ...o.i32GeU, ...o.brIf(1),
      ...o.localGet(dst), ...o.localGet(v), ...o.i32Add,
      ...o.localGet(src), ...o.localGet(v), ...o.i32Add, ...o.v128Load(0),
      ...o.v128Store(0),
      ...bump(v, 16), ...o.br(0),
      ...o.end, ...o.end,
      ...bump(src, o.localGet(inner)), ...bump(dst, o.localGet(bytes))
    ])
  ]
  return { name: "copy", params: Array<number>(5).fill(I32), results: [], locals: [[2, I32]], code }
}

/** The module's bytes: with relaxed SIMD's fused multiply-add, or without. @category constructors */
export const moduleBytes = (fma: boolean): Uint8Array<ArrayBuffer> => Wasm.module([blockFunc(fma), packFunc(), copyFunc(), pack4Func()])

/** The module this runtime validates: relaxed SIMD first, then plain SIMD; undefined when neither. @category constructors */
export const compile = (): { readonly module: WebAssembly.Module; readonly fma: boolean } | undefined => {
  for (const fma of [true, false]) {
    const bytes = moduleBytes(fma)
    if (WebAssembly.validate(bytes)) return { module: new WebAssembly.Module(bytes), fma }
  }
  return undefined
}

/** Binds a compiled module to a shared memory. @category constructors */
export const instantiate = (module: WebAssembly.Module, memory: WebAssembly.Memory): Exports =>
  new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as Exports
