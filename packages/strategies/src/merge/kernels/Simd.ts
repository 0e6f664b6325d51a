/**
 * A WebAssembly SIMD version of `WeightedSum.weightedSum` for 1–8 inputs that live in a shared
 * WebAssembly memory (see `Arena.ts`). Measured here, the plain loop reaches ~40% of memcpy
 * bandwidth and this one ~60% (bench/merge/kernels.ts).
 *
 * It computes exactly what the JavaScript loop computes — each float32 widened to float64,
 * multiplied by its float64 coefficient, summed left to right, rounded once to float32 (no fused
 * multiply-add) — so the two paths give bit-identical output and can be mixed freely. The module
 * is assembled in code (`Wasm.ts`, a few hundred bytes), so nothing is downloaded or built.
 *
 * @since 0.1.0
 */
import * as Wasm from "./Wasm.ts"
import { weightedSum as weightedSumJs } from "./WeightedSum.ts"

/** The most inputs the SIMD path takes; more fall back to the JavaScript loop. @category constants */
export const MAX_INPUTS = 8

/** Kernels bound to one shared memory. @category models */
export interface SimdKernels {
  readonly memory: WebAssembly.Memory
  /** Same contract as `WeightedSum.weightedSum`; returns false (and does nothing) when an array is not in `memory` or there are more than 8 inputs. */
  readonly weightedSum: (out: Float32Array, inputs: ReadonlyArray<Float32Array>, coefficients: ArrayLike<number>, start: number, end: number) => boolean
  /** Whether `x[start, end)` holds NaN or ±Inf (all exponent bits set); undefined when `x` is not in `memory`. */
  readonly hasNonFinite: (x: Float32Array, start: number, end: number) => boolean | undefined
}

/** Whether this runtime validates WebAssembly SIMD (Node ≥ 16.4 does). @category predicates */
export const isSupported = (): boolean => {
  try {
    return WebAssembly.validate(moduleBytes())
  } catch {
    return false
  }
}

/**
 * Instantiates the kernels on `memory` (a shared memory, as `Arena` makes). `owns` tells whether
 * an array is a view of that memory; each grow of a memory hands out a new `SharedArrayBuffer`
 * object, so pass `arena.owns`, which knows them all. The default knows the buffers this thread
 * has seen from `memory.buffer`, which suffices when views are made from it after the last grow
 * (as a worker does).
 *
 * @category constructors
 */
export const make = (memory: WebAssembly.Memory, owns?: (array: Float32Array) => boolean): SimdKernels => {
  const instance = new WebAssembly.Instance(compiled(), { env: { memory } })
  const fns = Array.from({ length: MAX_INPUTS }, (_, i) => instance.exports[`wsum${i + 1}`] as (...args: Array<number>) => void)
  const nonfinite = instance.exports.nonfinite as (pointer: number, bytes: number) => number
  const inMemory = owns ?? Wasm.owner(memory).owns
  const args: Array<number> = []
  return {
    memory,
    weightedSum: (out, inputs, coefficients, start, end) => {
      const n = inputs.length
      if (n === 0 || n > MAX_INPUTS || !inMemory(out) || !inputs.every(inMemory)) return false
      const vectors = Math.max(0, end - start) >>> 2
      if (vectors > 0) {
        args.length = 0
        args.push(out.byteOffset + start * 4)
        for (const x of inputs) args.push(x.byteOffset + start * 4)
        args.push(vectors * 16)
        for (let i = 0; i < n; i++) args.push(coefficients[i]!)
        fns[n - 1]!(...args)
      }
      const tail = start + vectors * 4
      if (tail < end) weightedSumJs(out, inputs, coefficients, tail, end)
      return true
    },
    hasNonFinite: (x, start, end) => {
      if (!inMemory(x)) return undefined
      const vectors = Math.max(0, end - start) >>> 2
      if (vectors > 0 && nonfinite(x.byteOffset + start * 4, vectors * 16) !== 0) return true
      for (let j = start + vectors * 4; j < end; j++) if (x[j]! - x[j]! !== 0) return true
      return false
    }
  }
}

let cachedModule: WebAssembly.Module | undefined
const compiled = (): WebAssembly.Module => (cachedModule ??= new WebAssembly.Module(moduleBytes()))

// ---------------------------------------------------------------------------------------------
// The module (assembled by Wasm.ts)

const { op, I32, F64, V128, HIGH_HALF, JOIN_LOW_HALVES } = Wasm

// wsumN(out, x₀…x_{N−1}, bytes, c₀…c_{N−1}): for each 16-byte step, the low and the high pair of
// lanes are widened, multiplied and accumulated as float64x2, then narrowed and joined.
const weightedSumFunc = (n: number): Wasm.Func => {
  const bytes = n + 1, coef = n + 2
  const splat = n + 2 + n, i = splat + n, x = i + 1, lo = i + 2, hi = i + 3
  const code: Array<number> = []
  for (let k = 0; k < n; k++) code.push(...op.localGet(coef + k), ...op.f64x2Splat(), ...op.localSet(splat + k))
  code.push(...op.block, ...op.loop)
  code.push(...op.localGet(i), ...op.localGet(bytes), ...op.i32GeU, ...op.brIf(1))
  for (let k = 0; k < n; k++) {
    code.push(...op.localGet(1 + k), ...op.localGet(i), ...op.i32Add, ...op.v128Load(), ...op.localTee(x))
    code.push(...op.f64x2PromoteLowF32x4(), ...op.localGet(splat + k), ...op.f64x2Mul())
    if (k > 0) code.push(...op.localGet(lo), ...op.f64x2Add())
    code.push(...op.localSet(lo))
    code.push(...op.localGet(x), ...op.localGet(x), ...op.shuffle(HIGH_HALF))
    code.push(...op.f64x2PromoteLowF32x4(), ...op.localGet(splat + k), ...op.f64x2Mul())
    if (k > 0) code.push(...op.localGet(hi), ...op.f64x2Add())
    code.push(...op.localSet(hi))
  }
  code.push(...op.localGet(0), ...op.localGet(i), ...op.i32Add)
  code.push(...op.localGet(lo), ...op.f32x4DemoteF64x2Zero(), ...op.localGet(hi), ...op.f32x4DemoteF64x2Zero(), ...op.shuffle(JOIN_LOW_HALVES))
  code.push(...op.v128Store())
  code.push(...op.localGet(i), ...op.i32Const(16), ...op.i32Add, ...op.localSet(i), ...op.br(0))
  code.push(...op.end, ...op.end)
  return { name: `wsum${n}`, params: [I32, ...Array<number>(n).fill(I32), I32, ...Array<number>(n).fill(F64)], results: [], locals: [[n, V128], [1, I32], [3, V128]], code }
}

// nonfinite(pointer, bytes) → i32: ORs, lane by lane, "all 8 exponent bits set" (NaN, ±Inf) over
// the 16-byte steps, then asks whether any lane was ever set. The merge/linear stream runs it on
// each summed chunk while it is in cache.
const EXPONENT = Array.from({ length: 4 }, () => [0x00, 0x00, 0x80, 0x7f]).flat()
const nonFiniteFunc = (): Wasm.Func => {
  const pointer = 0, bytes = 1, i = 2, acc = 3, mask = 4
  const code: Array<number> = [...op.v128Const(EXPONENT), ...op.localSet(mask)]
  code.push(...op.block, ...op.loop)
  code.push(...op.localGet(i), ...op.localGet(bytes), ...op.i32GeU, ...op.brIf(1))
  code.push(...op.localGet(acc))
  code.push(...op.localGet(pointer), ...op.localGet(i), ...op.i32Add, ...op.v128Load(), ...op.localGet(mask), ...op.v128And(), ...op.localGet(mask), ...op.i32x4Eq())
  code.push(...op.v128Or(), ...op.localSet(acc))
  code.push(...op.localGet(i), ...op.i32Const(16), ...op.i32Add, ...op.localSet(i), ...op.br(0))
  code.push(...op.end, ...op.end)
  code.push(...op.localGet(acc), ...op.v128AnyTrue())
  return { name: "nonfinite", params: [I32, I32], results: [I32], locals: [[1, I32], [2, V128]], code }
}

const moduleBytes = (): Uint8Array<ArrayBuffer> =>
  Wasm.module([...Array.from({ length: MAX_INPUTS }, (_, k) => weightedSumFunc(k + 1)), nonFiniteFunc()])
