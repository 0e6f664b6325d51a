/**
 * Multi-SLERP, mergekit's barycentric interpolation on the hypersphere:
 * `θ = (Σᵢ wᵢ‖xᵢ‖) · m̂` with `m̂ = normalize(Σᵢ wᵢ xᵢ/(‖xᵢ‖+ε))` (on task vectors `xᵢ = θᵢ − base`
 * with a base, which is added back).
 *
 * mergekit projects the unit vectors onto the tangent space at m̂, averages there and maps back
 * with the exponential map. The weighted tangent average is `Σ wᵢ(uᵢ − ⟨uᵢ,m̂⟩m̂) = m − ‖m‖m̂ = 0`
 * exactly, so the map returns `m̂·cos ε` and the whole method is the closed form above: a weighted
 * sum whose coefficients come from the N×N Gram matrix ({@link statistics}). The test checks it
 * against the step-by-step algorithm. Like mergekit: one input is returned as is; when the
 * weighted mean of the unit vectors vanishes, two inputs fall back to `w₀x₀ + w₁x₁` and more
 * are an error.
 *
 * @since 0.1.0
 */
import { Result } from "effect"
import * as Gram from "./Gram.ts"
import { DegenerateMerge, InvalidMergeParameter, type MergeKernelError } from "./KernelError.ts"
import { overBase, weightedSum } from "./WeightedSum.ts"

/** @category params */
export interface MultislerpParams {
  /** One weight per model. */
  readonly weights: ReadonlyArray<number>
  /** Divide the weights by their sum (default true). */
  readonly normalizeWeights?: boolean
  /** Added to each norm before dividing (default 1e-8). */
  readonly eps?: number
}

/** @category plans */
export interface MultislerpPlan {
  /** Over `models`, or `[base, ...models]` with a base. */
  readonly coefficients: ReadonlyArray<number>
}

const METHOD = "multislerp"

/** The N×N Gram matrix of the models (task vectors with a base). @category statistics */
export const statistics = (models: ReadonlyArray<Float32Array>, base?: Float32Array): Float64Array => Gram.gram(models, base)

/** Coefficients from the statistics. @category plans */
export const plan = (params: MultislerpParams, gram: Float64Array, withBase: boolean, tensor: string): Result.Result<MultislerpPlan, MergeKernelError> => {
  const n = Math.round(Math.sqrt(gram.length))
  const eps = params.eps ?? 1e-8
  const bad = (detail: string) => Result.fail(new InvalidMergeParameter({ method: METHOD, tensor, parameter: "weights", detail }))
  if (params.weights.length !== n) return bad(`${params.weights.length} weights for ${n} models`)
  if (!params.weights.every(Number.isFinite)) return bad(`weights must be finite numbers, got [${params.weights.join(", ")}]`)
  const wrap = (c: ReadonlyArray<number>) => Result.succeed({ coefficients: withBase ? overBase(c) : [...c] })
  if (n === 1) return wrap([1])
  const total = params.weights.reduce((a, b) => a + b, 0)
  if (params.normalizeWeights !== false && Math.abs(total) < 1e-12) return bad(`weights [${params.weights.join(", ")}] sum to 0: cannot normalize`)
  const w = params.normalizeWeights === false ? params.weights : params.weights.map((x) => x / total)
  const norms = Array.from({ length: n }, (_, i) => Math.sqrt(gram[i * n + i]!))
  let meanSquared = 0
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) meanSquared += (w[i]! * w[k]! * gram[i * n + k]!) / ((norms[i]! + eps) * (norms[k]! + eps))
  }
  const meanNorm = Math.sqrt(Math.max(0, meanSquared))
  if (meanNorm < eps) {
    if (n === 2) return wrap([w[0]!, w[1]!])
    return Result.fail(new DegenerateMerge({
      method: METHOD,
      tensor,
      detail: "the weighted mean of the unit vectors is zero (antipodal inputs whose weights cancel): change the weights"
    }))
  }
  let averageNorm = 0
  for (let i = 0; i < n; i++) averageNorm += w[i]! * norms[i]!
  const scale = (averageNorm * Math.cos(eps)) / meanNorm
  return wrap(w.map((wi, i) => (scale * wi) / (norms[i]! + eps)))
}

/** Writes the merge on `[start, end)`. @category kernels */
export const apply = (
  plan: MultislerpPlan,
  out: Float32Array,
  models: ReadonlyArray<Float32Array>,
  base?: Float32Array,
  start = 0,
  end = out.length
): void => weightedSum(out, base === undefined ? models : [base, ...models], plan.coefficients, start, end)
