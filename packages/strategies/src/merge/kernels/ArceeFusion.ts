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
 * @since 0.1.0
 */

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

/** Each entry's importance, |θ − base| times its row's KL divergence. @category kernels */
export const importance = (shape: ReadonlyArray<number>, base: Float32Array, model: Float32Array): Float64Array => {
  const n = base.length
  const rowLength = shape.length >= 2 ? shape.at(-1)! : n
  const scores = new Float64Array(n)
  for (let start = 0; start < n; start += rowLength) {
    const kl = divergence(model, base, start, rowLength)
    for (let j = start; j < start + rowLength; j++) scores[j] = Math.abs(model[j]! - base[j]!) * kl
  }
  return scores
}

/** @category kernels */
export const apply = (shape: ReadonlyArray<number>, base: Float32Array, model: Float32Array): FusionResult => {
  const n = base.length
  const scores = importance(shape, base, model)
  const sorted = scores.slice().sort()
  const quantile = (q: number) => sorted[Math.floor(q * (n - 1))]!
  const threshold = n === 0 ? 0 : quantile(0.5) + 1.5 * (quantile(0.75) - quantile(0.25))
  const out = new Float32Array(n)
  let taken = 0
  for (let j = 0; j < n; j++) {
    const take = scores[j]! >= threshold
    out[j] = take ? model[j]! : base[j]!
    taken += +take
  }
  return { out, threshold, taken: n === 0 ? 0 : taken / n }
}
