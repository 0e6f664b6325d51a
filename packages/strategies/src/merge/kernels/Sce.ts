/**
 * mergekit's SCE (Select, Calculate, Erase; FuseLLM's merge): with task vectors τᵢ = θᵢ − base,
 * **select** keeps the `selectTopk` fraction of the entries whose variance across the models is
 * nonzero, largest variance first (all entries at 1, none at ≤ 0); **calculate** weighs each model
 * by wᵢ = mean(τᵢ²)/Σₖ mean(τₖ²) over the kept entries (1/N when that sum is below 1e-6);
 * **erase** keeps, per entry, the models whose sign agrees with the sign of Σᵢ τᵢ (ties +, zeros
 * never agree): `θ = base + Σᵢ mᵢwᵢτᵢ / max(Σᵢ mᵢwᵢ, 1e-6)`.
 *
 * Equal variances at the cut are kept lowest index first (mergekit's `topk` leaves the order
 * unspecified). Variances, weights and sums are float64, rounded once.
 *
 * Written as passes ({@link passes}) that split over element ranges with the same bytes: the cut
 * is an exact radix select over the variances (`Radix64.ts`, recomputed per pass rather than
 * stored), the equal variances kept are those up to the index of the last one kept, and the
 * squared task vectors are summed per block (`BlockSums.ts`). The pool form is `Parallel.sce`.
 *
 * @since 0.1.0
 */
import * as BlockSums from "./BlockSums.ts"
import { type Passes, runInThread } from "./Passes.ts"
import type { Range } from "./Pool.ts"
import * as Radix64 from "./Radix64.ts"

/** What the merge kept, for the tensor's diagnostics. @category models */
export interface SceResult {
  readonly out: Float32Array
  /** The fraction of entries selected. */
  readonly kept: number
  /** Each model's weight wᵢ. */
  readonly weights: ReadonlyArray<number>
}

const MIN_WEIGHT_SUM = 1e-6
const MIN_DIVISOR = 1e-6

type F32 = Float32Array

/**
 * The entries the select step keeps: all, none, or those whose variance exceeds `cut` plus those
 * equal to it up to index `lastTie`.
 *
 * @category models
 */
export type Selection =
  | { readonly kind: "all" }
  | { readonly kind: "none" }
  | { readonly kind: "cut"; readonly cut: number; readonly lastTie: number }

/** One pass over `[start, end)` (start a multiple of `Gram.BLOCK` for the sums to line up). @category models */
export type Step =
  | { readonly pass: "count"; readonly base: F32; readonly models: ReadonlyArray<F32>; readonly digit: number; readonly targets: ReadonlyArray<Radix64.Target> }
  | { readonly pass: "nthEqual"; readonly base: F32; readonly models: ReadonlyArray<F32>; readonly cut: number; readonly nth: number }
  | { readonly pass: "squares"; readonly base: F32; readonly models: ReadonlyArray<F32>; readonly selection: Selection }
  | { readonly pass: "erase"; readonly base: F32; readonly models: ReadonlyArray<F32>; readonly selection: Selection; readonly weights: ReadonlyArray<number>; readonly out: F32 }

/** The variance of the task vectors at `j`, across the models. */
const variance = (base: F32, models: ReadonlyArray<F32>, j: number): number => {
  const count = models.length, origin = base[j]!
  let mean = 0
  for (let i = 0; i < count; i++) mean += models[i]![j]! - origin
  mean /= count
  let v = 0
  for (let i = 0; i < count; i++) {
    const d = models[i]![j]! - origin - mean
    v += d * d
  }
  return v / count
}

const keeps = (selection: Selection, base: F32, models: ReadonlyArray<F32>, j: number): number => {
  if (selection.kind !== "cut") return selection.kind === "all" ? 1 : 0
  const v = variance(base, models, j)
  return v > selection.cut || (v === selection.cut && j <= selection.lastTie) ? 1 : 0
}

/** Runs one pass on `[start, end)`. @category kernels */
export const step = (a: Step, start: number, end: number): Radix64.Counts | number | { readonly sums: Float64Array; readonly kept: number } | undefined => {
  const { base, models } = a
  switch (a.pass) {
    case "count": {
      const counts = Radix64.emptyCounts(a.targets.length)
      const chunk = Radix64.scratch()
      for (let j0 = start; j0 < end; j0 += Radix64.CHUNK) {
        const m = Math.min(Radix64.CHUNK, end - j0)
        for (let k = 0; k < m; k++) chunk.values[k] = variance(base, models, j0 + k)
        Radix64.count(chunk, m, a, counts)
      }
      return counts
    }
    case "nthEqual": {
      let seen = 0
      for (let j = start; j < end; j++) if (variance(base, models, j) === a.cut && ++seen === a.nth) return j
      return -1
    }
    case "squares": {
      let kept = 0
      const sums = BlockSums.partials(start, end, models.length, (b0, b1, block) => {
        for (let j = b0; j < b1; j++) {
          const keep = keeps(a.selection, base, models, j)
          kept += keep
          for (let i = 0; i < models.length; i++) {
            const tau = keep * (models[i]![j]! - base[j]!)
            block[i] = block[i]! + tau * tau
          }
        }
      })
      return { sums, kept }
    }
    case "erase": {
      const { out, weights } = a
      for (let j = start; j < end; j++) {
        if (keeps(a.selection, base, models, j) === 0) {
          out[j] = base[j]!
          continue
        }
        let sum = 0
        for (const m of models) sum += m[j]! - base[j]!
        const sign = sum >= 0 ? 1 : -1
        let mixed = 0, divisor = 0
        for (let i = 0; i < models.length; i++) {
          const tau = models[i]![j]! - base[j]!
          if (tau * sign > 0) {
            mixed += weights[i]! * tau
            divisor += weights[i]!
          }
        }
        out[j] = base[j]! + mixed / Math.max(divisor, MIN_DIVISOR)
      }
      return undefined
    }
  }
}

/** The select step as passes on `ranges`: the top `fraction` of the nonzero variances. @category kernels */
export function* selection(fraction: number, base: F32, models: ReadonlyArray<F32>, ranges: ReadonlyArray<Range>): Passes<Step, Selection> {
  const n = base.length
  if (fraction >= 1) return { kind: "all" }
  if (fraction <= 0) return { kind: "none" }
  let k = 0
  const { found, nan } = yield* Radix64.select(ranges, n, (c): Step => ({ pass: "count", base, models, ...c }), ({ nonzero }) => {
    k = Math.floor(nonzero * fraction)
    return k === 0 ? [] : [n - k]
  })
  const at = found[0]
  // A NaN cut keeps nothing: no variance is above or equal to it.
  if (at === undefined || Number.isNaN(at.value)) return { kind: "none" }
  const equal = at.equal.reduce((t, c) => t + c, 0)
  const above = n - at.below - equal - nan
  // Equal variances kept lowest index first: find the index of the last one kept.
  let nth = Math.min(k - above, equal), r = 0
  while (nth > at.equal[r]!) nth -= at.equal[r++]!
  const [lastTie] = (yield { args: { pass: "nthEqual", base, models, cut: at.value, nth }, ranges: [ranges[r]!] }) as ReadonlyArray<number>
  return { kind: "cut", cut: at.value, lastTie: lastTie! }
}

/** The whole merge as passes on `ranges` (block-aligned, covering the tensor), writing `out`. @category kernels */
export function* passes(selectTopk: number, base: F32, models: ReadonlyArray<F32>, out: F32, ranges: ReadonlyArray<Range>): Passes<Step, Omit<SceResult, "out">> {
  const n = base.length
  const selected = yield* selection(selectTopk, base, models, ranges)
  const parts = (yield { args: { pass: "squares", base, models, selection: selected }, ranges }) as ReadonlyArray<{ readonly sums: Float64Array; readonly kept: number }>
  const kept = parts.reduce((t, p) => t + p.kept, 0)
  const squares = Array.from(BlockSums.combine(parts.map((p) => p.sums), models.length), (s) => (n === 0 ? 0 : s / n))
  const total = squares.reduce((a, b) => a + b, 0)
  const weights = Math.abs(total) < MIN_WEIGHT_SUM ? models.map(() => 1 / models.length) : squares.map((s) => s / total)
  yield { args: { pass: "erase", base, models, selection: selected, weights, out }, ranges }
  return { kept: n === 0 ? 0 : kept / n, weights }
}

/** The entries kept by the select step: 1 for the top `fraction` of the nonzero variances. @category kernels */
export const select = (base: F32, models: ReadonlyArray<F32>, fraction: number): Uint8Array => {
  const chosen = runInThread(selection(fraction, base, models, [{ start: 0, end: base.length }]), step)
  return Uint8Array.from({ length: base.length }, (_, j) => keeps(chosen, base, models, j))
}

/** @category kernels */
export const apply = (selectTopk: number, base: F32, models: ReadonlyArray<F32>): SceResult => {
  const out = new Float32Array(base.length)
  return { out, ...runInThread(passes(selectTopk, base, models, out, [{ start: 0, end: base.length }]), step) }
}
