/**
 * mergekit's Arcee Fusion: take a model's change to the base only where it matters most. Per
 * entry, the importance is `|θ − base| · KL(softmax(θ) ‖ softmax(base))`, the KL divergence taken
 * per row (the last axis; the whole tensor when 1-D) with 1e-8 added to both distributions;
 * entries whose importance is at least `median + 1.5·(q₃ − q₁)` take the model's value, the
 * others keep the base's. Quantile q is the sorted importances' element ⌊q·(n − 1)⌋.
 *
 * The quantiles are exact over the whole tensor: mergekit estimates them from 1,000,000 entries
 * drawn at random (unseeded) when a tensor is larger, so its choice varies from run to run.
 * Float64 throughout.
 *
 * Written as passes ({@link passes}) that split over ranges with the same bytes: each row's KL in
 * one thread (rows split over the pool), the quantiles by an exact radix select over the
 * importances (`Radix64.ts`, recomputed per pass from the inputs and the rows' KL, not stored),
 * then the elementwise choice. The pool form is `Parallel.arceeFusion`.
 *
 * @since 0.1.0
 */
import * as BlockSums from "./BlockSums.ts"
import { type Passes, runInThread } from "./Passes.ts"
import type { Range } from "./Pool.ts"
import * as Radix64 from "./Radix64.ts"

/** What the merge took, for the tensor's diagnostics. @category models */
export interface FusionResult {
  readonly out: Float32Array
  readonly threshold: number
  /** The fraction of entries taken from the model. */
  readonly taken: number
}

const EPS = 1e-8

/** KL(softmax(p) + ε ‖ softmax(q) + ε) over `[start, start + length)`. */
const divergence = (p: Float32Array, q: Float32Array, start: number, length: number): number => {
  let maxP = -Infinity, maxQ = -Infinity
  for (let k = start; k < start + length; k++) {
    maxP = Math.max(maxP, p[k]!)
    maxQ = Math.max(maxQ, q[k]!)
  }
  let sumP = 0, sumQ = 0
  for (let k = start; k < start + length; k++) {
    sumP += Math.exp(p[k]! - maxP)
    sumQ += Math.exp(q[k]! - maxQ)
  }
  let kl = 0
  for (let k = start; k < start + length; k++) {
    const pk = Math.exp(p[k]! - maxP) / sumP + EPS
    const qk = Math.exp(q[k]! - maxQ) / sumQ + EPS
    kl += pk * Math.log(pk / qk)
  }
  return kl
}

type F32 = Float32Array

/** The length of the rows the KL divergence is taken over (the whole tensor when 1-D). @category layout */
export const rowLength = (shape: ReadonlyArray<number>, n: number): number => (shape.length >= 2 ? shape.at(-1)! : n)

/** Each entry's importance, |θ − base| times its row's KL divergence. @category kernels */
export const importance = (shape: ReadonlyArray<number>, base: F32, model: F32): Float64Array => {
  const n = base.length
  const length = rowLength(shape, n)
  const kl = divergences(base, model, length, 0, n)
  return Float64Array.from({ length: n }, (_, j) => Math.abs(model[j]! - base[j]!) * kl[Math.floor(j / length)]!)
}

/** The KL divergence of each whole row in `[start, end)` (multiples of the row length). @category kernels */
export const divergences = (base: F32, model: F32, length: number, start: number, end: number): Float64Array => {
  const rows = length === 0 ? 0 : (end - start) / length
  return Float64Array.from({ length: rows }, (_, r) => divergence(model, base, start + r * length, length))
}

/**
 * One pass over `[start, end)`; `kl` holds every row's divergence (a copy crosses to each worker:
 * one number per row).
 *
 * @category models
 */
export type Step =
  | { readonly pass: "divergences"; readonly base: F32; readonly model: F32; readonly rowLength: number }
  | { readonly pass: "count"; readonly base: F32; readonly model: F32; readonly rowLength: number; readonly kl: Float64Array; readonly digit: number; readonly targets: ReadonlyArray<Radix64.Target> }
  | { readonly pass: "fuse"; readonly base: F32; readonly model: F32; readonly rowLength: number; readonly kl: Float64Array; readonly threshold: number; readonly out: F32 }

/** Runs one pass on `[start, end)`. @category kernels */
export const step = (a: Step, start: number, end: number): Float64Array | Radix64.Counts | number => {
  const { base, model, rowLength: length } = a
  switch (a.pass) {
    case "divergences":
      return divergences(base, model, length, start, end)
    case "count": {
      const counts = Radix64.emptyCounts(a.targets.length)
      const chunk = Radix64.scratch()
      for (let j0 = start; j0 < end; j0 += Radix64.CHUNK) {
        const m = Math.min(Radix64.CHUNK, end - j0)
        for (let k = 0; k < m; k++) chunk.values[k] = Math.abs(model[j0 + k]! - base[j0 + k]!) * a.kl[Math.floor((j0 + k) / length)]!
        Radix64.count(chunk, m, a, counts)
      }
      return counts
    }
    case "fuse": {
      let taken = 0
      for (let j = start; j < end; j++) {
        const take = Math.abs(model[j]! - base[j]!) * a.kl[Math.floor(j / length)]! >= a.threshold
        a.out[j] = take ? model[j]! : base[j]!
        taken += +take
      }
      return taken
    }
  }
}

/**
 * The merge as passes: `rows` are ranges of whole rows, `ranges` any ranges covering the tensor.
 *
 * @category kernels
 */
export function* passes(
  shape: ReadonlyArray<number>,
  base: F32,
  model: F32,
  out: F32,
  rows: ReadonlyArray<Range>,
  ranges: ReadonlyArray<Range>
): Passes<Step, Omit<FusionResult, "out">> {
  const n = base.length
  const length = rowLength(shape, n)
  const parts = (yield { args: { pass: "divergences", base, model, rowLength: length }, ranges: rows }) as ReadonlyArray<Float64Array>
  const kl = BlockSums.concat(parts)
  const ranks = [0.25, 0.5, 0.75].map((q) => Math.floor(q * (n - 1)))
  const { found } = yield* Radix64.select(ranges, n, (c): Step => ({ pass: "count", base, model, rowLength: length, kl, ...c }), () => ranks)
  const quantile = (q: number) => found.find((f) => f.rank === ranks[q])!.value
  const threshold = n === 0 ? 0 : quantile(1) + 1.5 * (quantile(2) - quantile(0))
  const taken = ((yield { args: { pass: "fuse", base, model, rowLength: length, kl, threshold, out }, ranges }) as ReadonlyArray<number>).reduce((t, c) => t + c, 0)
  return { threshold, taken: n === 0 ? 0 : taken / n }
}

/** @category kernels */
export const apply = (shape: ReadonlyArray<number>, base: F32, model: F32): FusionResult => {
  const out = new Float32Array(base.length)
  const whole = [{ start: 0, end: base.length }]
  return { out, ...runInThread(passes(shape, base, model, out, whole, whole), step) }
}
