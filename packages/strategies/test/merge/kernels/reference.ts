/**
 * Float64 references of the generalized task-arithmetic merge, written the plain way (sorts,
 * loops over models), independent of the kernels' selection and mixing code. The random draws
 * come from `Prng` (tested on its own), so DARE/DELLA masks can be compared element for element.
 */
import * as Prng from "../../../src/merge/kernels/Prng.ts"

export interface RefOptions {
  readonly weights: ReadonlyArray<number>
  readonly sparsify: "none" | "magnitude" | "random" | "breadcrumbs" | "della"
  readonly consensus: "none" | "sum" | "count"
  readonly rescale: "none" | "unbiased" | "l1"
  readonly normalize: boolean
  readonly lambda?: number
  readonly density?: ReadonlyArray<number>
  readonly gamma?: ReadonlyArray<number>
  readonly epsilon?: ReadonlyArray<number>
  readonly seed?: number
  readonly tensor: string
  readonly shape: ReadonlyArray<number>
}

/** Descending |τ|, ties by ascending index. */
const descending = (tau: ReadonlyArray<number>): Array<number> =>
  tau.map((_, j) => j).sort((i, j) => Math.abs(tau[j]!) - Math.abs(tau[i]!) || i - j)

/** Per model: the sparsified, rescaled task vector (before weighting). */
export const sparsified = (base: Float32Array, x: Float32Array, i: number, o: RefOptions): Float64Array => {
  const n = base.length
  const tau = Array.from(x, (v, j) => Math.fround(v - base[j]!))
  const d = o.density?.[i] ?? 1
  const keep = new Float64Array(n) // keep probability of survivors (0 = dropped)
  if (o.sparsify === "none" || d >= 1) keep.fill(1)
  else if (o.sparsify === "magnitude" || o.sparsify === "breadcrumbs") {
    const target = Math.floor(d * n)
    let top = 0
    if (o.sparsify === "breadcrumbs") {
      top = Math.floor((o.gamma?.[i] ?? 0.01) * n)
      if (n - target - top < 0) top = n - target
    }
    for (const j of descending(tau).slice(top, top + target)) keep[j] = 1
  } else {
    const key = Prng.key(o.seed ?? 0, o.tensor, i)
    const rowLength = o.shape.length >= 2 ? n / o.shape[0]! : n
    const e = o.epsilon?.[i] ?? 0.15
    for (let r = 0; r * rowLength < n; r++) {
      const row = Array.from({ length: rowLength }, (_, k) => r * rowLength + k)
      // Ascending |τ| within the row; among equals the higher index ranks lower.
      const asc = [...row].sort((a, b) => Math.abs(tau[a]!) - Math.abs(tau[b]!) || b - a)
      for (const [rank, j] of asc.entries()) {
        const p = o.sparsify === "random" ? d : d <= 0 ? 0 : rowLength === 1 ? d : d - e + (2 * e * rank) / (rowLength - 1)
        if (Prng.uniform(key, j) < p) keep[j] = p
      }
    }
  }
  const out = new Float64Array(n)
  let before = 0, after = 0
  for (let j = 0; j < n; j++) {
    before += Math.abs(tau[j]!)
    if (keep[j]! > 0) after += Math.abs(tau[j]!)
  }
  const l1 = o.rescale === "l1" && before >= 1e-7 && after >= 1e-7 ? before / after : 1
  for (let j = 0; j < n; j++) {
    if (keep[j]! === 0) continue
    out[j] = o.rescale === "unbiased" ? tau[j]! / keep[j]! : tau[j]! * l1
  }
  return out
}

/** θ = base + λ·(consensus-masked, optionally normalized) Σ wᵢ S(τᵢ), in float64. */
export const generalized = (base: Float32Array, models: ReadonlyArray<Float32Array>, o: RefOptions): Float64Array => {
  const n = base.length
  const v = models.map((x, i) => sparsified(base, x, i, o).map((s) => o.weights[i]! * s))
  const out = new Float64Array(n)
  const totalWeight = o.weights.reduce((a, b) => a + b, 0)
  for (let j = 0; j < n; j++) {
    let mixed = 0
    let divisor = 0
    if (o.consensus === "none") {
      for (const vi of v) mixed += vi[j]!
      divisor = Math.abs(totalWeight) < 1e-8 ? 1 : totalWeight
    } else {
      let vote = 0
      for (const vi of v) vote += o.consensus === "sum" ? vi[j]! : Math.sign(vi[j]!)
      const sign = vote >= 0 ? 1 : -1
      for (const [i, vi] of v.entries()) {
        if (Math.sign(vi[j]!) === sign) {
          mixed += vi[j]!
          divisor += o.weights[i]!
        }
      }
      if (divisor === 0) divisor = 1
    }
    out[j] = base[j]! + (o.lambda ?? 1) * (o.normalize ? mixed / divisor : mixed)
  }
  return out
}
