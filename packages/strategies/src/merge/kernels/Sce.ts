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
 * @since 0.1.0
 */

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

/** The entries kept by the select step: 1 for the top `fraction` of the nonzero variances. @category kernels */
export const select = (base: Float32Array, models: ReadonlyArray<Float32Array>, fraction: number): Uint8Array => {
  const n = base.length
  const keep = new Uint8Array(n)
  if (fraction >= 1) return keep.fill(1)
  if (fraction <= 0) return keep
  const variance = new Float64Array(n)
  let nonzero = 0
  for (let j = 0; j < n; j++) {
    let mean = 0
    for (const m of models) mean += m[j]! - base[j]!
    mean /= models.length
    let v = 0
    for (const m of models) {
      const d = m[j]! - base[j]! - mean
      v += d * d
    }
    variance[j] = v / models.length
    if (variance[j] !== 0) nonzero++
  }
  const k = Math.floor(nonzero * fraction)
  if (k === 0) return keep
  const cut = variance.slice().sort()[n - k]!
  let above = 0
  for (let j = 0; j < n; j++) if (variance[j]! > cut) above++
  let ties = k - above
  for (let j = 0; j < n; j++) {
    const v = variance[j]!
    if (v > cut || (v === cut && ties-- > 0)) keep[j] = 1
  }
  return keep
}

/** @category kernels */
export const apply = (selectTopk: number, base: Float32Array, models: ReadonlyArray<Float32Array>): SceResult => {
  const n = base.length
  const keep = select(base, models, selectTopk)
  let kept = 0
  for (let j = 0; j < n; j++) kept += keep[j]!
  const squares = models.map((m) => {
    let s = 0
    for (let j = 0; j < n; j++) {
      const tau = keep[j]! * (m[j]! - base[j]!)
      s += tau * tau
    }
    return n === 0 ? 0 : s / n
  })
  const total = squares.reduce((a, b) => a + b, 0)
  const weights = Math.abs(total) < MIN_WEIGHT_SUM ? models.map(() => 1 / models.length) : squares.map((s) => s / total)
  const out = new Float32Array(n)
  for (let j = 0; j < n; j++) {
    if (keep[j] === 0) {
      out[j] = base[j]!
      continue
    }
    let sum = 0
    for (const m of models) sum += m[j]! - base[j]!
    const sign = sum >= 0 ? 1 : -1
    let mixed = 0, divisor = 0
    models.forEach((m, i) => {
      const tau = m[j]! - base[j]!
      if (tau * sign > 0) {
        mixed += weights[i]! * tau
        divisor += weights[i]!
      }
    })
    out[j] = base[j]! + mixed / Math.max(divisor, MIN_DIVISOR)
  }
  return { out, kept: n === 0 ? 0 : kept / n, weights }
}
