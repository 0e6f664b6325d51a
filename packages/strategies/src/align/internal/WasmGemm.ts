/**
 * The `A·Bᵀ` kernels of `Gemm.ts` as WebAssembly SIMD, assembled here byte by byte (no toolchain
 * is available to this project, and the module is ~1 KB). float32 operands are widened to
 * float64x2 lanes before multiplying, so every product is exact and sums are float64, bit-for-bit
 * the precision of the plain-JS kernel at ~2.5× its speed (11 vs 4.5 GFLOP/s on one thread here;
 * float32x4 accumulation would reach ~40 but rounds every product, which makes score ties noisy).
 *
 * Kernel contract (byte offsets into the module's memory, sizes in elements): `abt(a, b, out, m,
 * n, k)` writes `out[i·n + j] = Σₜ a[i·k + t]·b[j·k + t]` for `m` even, `n` a multiple of 4 and `k`
 * a multiple of 4; `abtDifference(a, next, previous, out, m, n, k)` writes `Σₜ a·(next − previous)`.
 * Callers pad with zero rows and columns.
 *
 * @since 0.1.0
 */

import { name, section, sleb as s32, uleb as u32, vec as vector } from "../../merge/kernels/Wasm.ts"

type Bytes = Array<number>

const I32 = 0x7f
const F64 = 0x7c
const V128 = 0x7b

// The instructions used, by their names in the WebAssembly spec.
const get = (local: number): Bytes => [0x20, ...u32(local)]
const set = (local: number): Bytes => [0x21, ...u32(local)]
const tee = (local: number): Bytes => [0x22, ...u32(local)]
const i32Const = (value: number): Bytes => [0x41, ...s32(value)]
const i32Add: Bytes = [0x6a]
const i32Mul: Bytes = [0x6c]
const i32Shl: Bytes = [0x74]
const i32GeU: Bytes = [0x4f]
const f64Add: Bytes = [0xa0]
const f64Store = (offset: number): Bytes => [0x39, 3, ...u32(offset)]
const simd = (opcode: number): Bytes => [0xfd, ...u32(opcode)]
const v128Load: Bytes = [...simd(0x00), 4, 0]
const v128Zero: Bytes = [...simd(0x0c), ...new Array<number>(16).fill(0)]
/** Moves lanes 2, 3 of an f32x4 into lanes 0, 1 so `promote` can widen them. */
const highToLow: Bytes = [...simd(0x0d), 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7]
const f64x2PromoteLow = simd(0x5f)
const f64x2Add = simd(0xf0)
const f64x2Sub = simd(0xf1)
const f64x2Mul = simd(0xf2)
const f64x2Lane = (lane: number): Bytes => [...simd(0x21), lane]
const block: Bytes = [0x02, 0x40]
const loop: Bytes = [0x03, 0x40]
const end: Bytes = [0x0b]
const br = (depth: number): Bytes => [0x0c, ...u32(depth)]
const brIf = (depth: number): Bytes => [0x0d, ...u32(depth)]

/**
 * One kernel. Per 2×4 tile of `out`, for every 4 elements of k: widen two A rows to (lo, hi)
 * f64x2 pairs, then for each of four B rows widen it (and subtract `previous`'s row) and add the
 * two lane-wise products into that cell's f64x2 accumulator. 8 accumulators + 6 operands fit the
 * 16 vector registers of x64.
 */
const kernel = (difference: boolean): Bytes => {
  const parameters = difference ? 7 : 6
  const [a, b, previous, out, m, n, k] = difference ? [0, 1, 2, 3, 4, 5, 6] : [0, 1, -1, 2, 3, 4, 5]
  let next = parameters
  const local = () => next++
  const i = local(), j = local(), rowBytes = local(), rowEnd = local(), pa0 = local(), pa1 = local(), target = local()
  const pb = [local(), local(), local(), local()]
  const pp = difference ? [local(), local(), local(), local()] : []
  const i32Locals = next - parameters
  const accumulators = Array.from({ length: 8 }, local)
  const x = [local(), local(), local(), local()]
  const y = [local(), local(), local(), local()]
  const v128Locals = next - parameters - i32Locals
  const code: Bytes = []
  const emit = (...parts: ReadonlyArray<Bytes>) => {
    for (const part of parts) code.push(...part)
  }
  const advance = (pointer: number) => emit(get(pointer), i32Const(16), i32Add, set(pointer))
  /** Loads 4 floats at `pointer` and leaves them widened in `lo`, `hi`. */
  const loadWide = (pointer: number, lo: number, hi: number) =>
    emit(get(pointer), v128Load, tee(hi), f64x2PromoteLow, set(lo), get(hi), get(hi), highToLow, f64x2PromoteLow, set(hi))

  emit(get(k!), i32Const(2), i32Shl, set(rowBytes))
  emit(i32Const(0), set(i), block, loop, get(i), get(m!), i32GeU, brIf(1))
  emit(i32Const(0), set(j), block, loop, get(j), get(n!), i32GeU, brIf(1))
  // Row pointers of this tile; the A row's end bounds the k loop.
  emit(get(a!), get(i), get(rowBytes), i32Mul, i32Add, tee(pa0), get(rowBytes), i32Add, tee(rowEnd), set(pa1))
  for (const [base, pointers] of difference ? [[b!, pb], [previous!, pp]] as const : [[b!, pb]] as const) {
    emit(get(base), get(j), get(rowBytes), i32Mul, i32Add, set(pointers[0]!))
    for (let q = 1; q < 4; q++) emit(get(pointers[q - 1]!), get(rowBytes), i32Add, set(pointers[q]!))
  }
  for (const acc of accumulators) emit(v128Zero, set(acc))
  emit(block, loop, get(pa0), get(rowEnd), i32GeU, brIf(1))
  loadWide(pa0, x[0]!, x[1]!)
  loadWide(pa1, x[2]!, x[3]!)
  for (let q = 0; q < 4; q++) {
    loadWide(pb[q]!, y[0]!, y[1]!)
    if (difference) {
      loadWide(pp[q]!, y[2]!, y[3]!)
      emit(get(y[0]!), get(y[2]!), f64x2Sub, set(y[0]!), get(y[1]!), get(y[3]!), f64x2Sub, set(y[1]!))
      advance(pp[q]!)
    }
    for (let r = 0; r < 2; r++) {
      const acc = accumulators[r * 4 + q]!
      emit(get(acc), get(x[2 * r]!), get(y[0]!), f64x2Mul, f64x2Add, get(x[2 * r + 1]!), get(y[1]!), f64x2Mul, f64x2Add, set(acc))
    }
    advance(pb[q]!)
  }
  advance(pa0)
  advance(pa1)
  emit(br(0), end, end)
  // out[(i + r)·n + j + q] = lane 0 + lane 1 of the cell's accumulator.
  emit(get(out!), get(i), get(n!), i32Mul, get(j), i32Add, i32Const(3), i32Shl, i32Add, set(target))
  for (let r = 0; r < 2; r++) {
    if (r === 1) emit(get(target), get(n!), i32Const(3), i32Shl, i32Add, set(target))
    for (let q = 0; q < 4; q++) {
      const acc = accumulators[r * 4 + q]!
      emit(get(target), get(acc), f64x2Lane(0), get(acc), f64x2Lane(1), f64Add, f64Store(8 * q))
    }
  }
  emit(get(j), i32Const(4), i32Add, set(j), br(0), end, end)
  emit(get(i), i32Const(2), i32Add, set(i), br(0), end, end)
  const body = [...vector([[...u32(i32Locals), I32], [...u32(v128Locals), V128]]), ...code, ...end]
  return [...u32(body.length), ...body]
}

/** The module's bytes: memory 0 and functions `abt` (type 0) and `abtDifference` (type 1). */
const moduleBytes = (): Uint8Array<ArrayBuffer> =>
  new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector([[0x60, ...vector(new Array(6).fill([I32])), 0], [0x60, ...vector(new Array(7).fill([I32])), 0]])),
    ...section(3, vector([[0], [1]])),
    ...section(5, vector([[0x00, ...u32(1)]])),
    ...section(7, vector([[...name("abt"), 0x00, 0], [...name("abtDifference"), 0x00, 1], [...name("memory"), 0x02, 0]])),
    ...section(10, vector([kernel(false), kernel(true)]))
  ])

/** The exports of one instance. */
export interface Instance {
  readonly memory: WebAssembly.Memory
  readonly abt: (a: number, b: number, out: number, m: number, n: number, k: number) => void
  readonly abtDifference: (a: number, next: number, previous: number, out: number, m: number, n: number, k: number) => void
}

let compiled: WebAssembly.Module | null | undefined

/**
 * A fresh instance (its own memory, freed with it), or undefined where WebAssembly SIMD is not
 * available. The compiled module is shared; it holds no state.
 */
export const instantiate = (): Instance | undefined => {
  if (compiled === undefined) {
    const bytes = moduleBytes()
    compiled = typeof WebAssembly === "object" && WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null
  }
  if (compiled === null) return undefined
  return new WebAssembly.Instance(compiled, {}).exports as unknown as Instance
}
