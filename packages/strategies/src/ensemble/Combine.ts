/**
 * Output-space fusion of member logits (pure host math, float64 inside). Every mode returns one
 * row of "logits" per sample whose softmax is the ensemble's predictive distribution, so
 * evaluation, calibration and distillation treat an ensemble like any classifier:
 *
 * - `mean-probs`: `p = Σ wᵢ softmax(zᵢ)`, returned as `log p`;
 * - `weighted`: the same with explicit, required `weights` (normalised to sum 1);
 * - `mean-logits`: `z = Σ wᵢ zᵢ` (a product of experts);
 * - `vote`: (weighted) majority vote, returned as `log p` with `p = (1 − ε)·v + ε·p̄`, `v` the
 *   vote shares, `p̄` the mean probability and `ε` = {@link VOTE_EPSILON}: the argmax is the
 *   majority class (for fewer than 999 equally weighted members no probability can outweigh one
 *   vote), ties are broken by the mean probability, and `p` is a proper distribution, so the loss
 *   stays finite for classes no member voted for.
 *
 * Weights default to equal and are normalised. `log p` is floored at `log(1e-45)` (`p` = 0 is
 * possible in float arithmetic).
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/** @category schemas */
export const Mode = Schema.Literals(["mean-probs", "mean-logits", "weighted", "vote"])
export type Mode = typeof Mode.Type

/** Weight of the mean probability in a vote's distribution (the tie-breaker). */
export const VOTE_EPSILON = 1e-3

const LOG_FLOOR = Math.log(1e-45)

/** `softmax(z_row / temperature)` of row `row` of a `[n, k]` matrix, into `out` (float64). */
export const softmaxRow = (z: ArrayLike<number>, row: number, k: number, out: Float64Array, temperature = 1): Float64Array => {
  let max = -Infinity
  for (let j = 0; j < k; j++) max = Math.max(max, z[row * k + j]! / temperature)
  let sum = 0
  for (let j = 0; j < k; j++) {
    const e = Math.exp(z[row * k + j]! / temperature - max)
    out[j] = e
    sum += e
  }
  for (let j = 0; j < k; j++) out[j]! /= sum
  return out
}

/** Weights normalised to sum 1 (equal when omitted). Throws on a count mismatch or a non-positive sum: callers validate first. */
export const normaliseWeights = (members: number, weights?: ReadonlyArray<number>): Array<number> => {
  const w = weights ?? Array.from({ length: members }, () => 1)
  if (w.length !== members) throw new RangeError(`${w.length} weights for ${members} members`)
  const total = w.reduce((a, b) => a + b, 0)
  if (!(total > 0) || w.some((x) => !(x >= 0))) throw new RangeError(`weights must be non-negative with a positive sum, got [${w.join(", ")}]`)
  return w.map((x) => x / total)
}

/** The ensemble's logits `[n, k]` from each member's logits `[n, k]`. */
export const combine = (mode: Mode, memberLogits: ReadonlyArray<ArrayLike<number>>, n: number, k: number, weights?: ReadonlyArray<number>): Float32Array => {
  const m = memberLogits.length
  const w = normaliseWeights(m, weights)
  for (const z of memberLogits) if (z.length !== n * k) throw new RangeError(`member logits hold ${z.length} values, expected ${n} × ${k}`)
  const out = new Float32Array(n * k)
  const p = new Float64Array(k)
  const acc = new Float64Array(k)
  const votes = new Float64Array(k)
  for (let i = 0; i < n; i++) {
    acc.fill(0)
    votes.fill(0)
    for (let e = 0; e < m; e++) {
      const z = memberLogits[e]!
      if (mode === "mean-logits") {
        for (let j = 0; j < k; j++) acc[j]! += w[e]! * z[i * k + j]!
        continue
      }
      softmaxRow(z, i, k, p)
      for (let j = 0; j < k; j++) acc[j]! += w[e]! * p[j]!
      if (mode === "vote") {
        let best = 0
        for (let j = 1; j < k; j++) if (z[i * k + j]! > z[i * k + best]!) best = j
        votes[best]! += w[e]!
      }
    }
    for (let j = 0; j < k; j++) {
      const value = mode === "mean-logits" ? acc[j]! : mode === "vote" ? Math.log((1 - VOTE_EPSILON) * votes[j]! + VOTE_EPSILON * acc[j]!) : Math.log(acc[j]!)
      out[i * k + j] = mode === "mean-logits" ? value : Math.max(LOG_FLOOR, value)
    }
  }
  return out
}
