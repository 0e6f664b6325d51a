/**
 * Fisher merging (Matena & Raffel 2022, https://arxiv.org/abs/2111.09832):
 * `θ = Σᵢ wᵢ F̃ᵢ θᵢ / Σᵢ wᵢ F̃ᵢ` elementwise, with `F̃ᵢ = max(Fᵢ, ε)` the diagonal Fisher
 * information floored at ε (so parameters no model is sure about get the weighted average).
 *
 * @since 0.1.0
 */
import { Result } from "effect"
import { InvalidMergeParameter, lengthProblem, MergeInputMismatch, type MergeKernelError } from "./KernelError.ts"

/** @category params */
export interface FisherParams {
  /** One non-negative weight per model (default all 1). */
  readonly weights?: ReadonlyArray<number>
  /** The floor on the Fisher values, > 0 (default 1e-6). */
  readonly epsilon?: number
}

/** @category plans */
export interface FisherPlan {
  readonly weights: ReadonlyArray<number>
  readonly epsilon: number
}

const METHOD = "fisher"
const CHUNK = 2048

/** Validates the parameters against the inputs (`models` and `fishers` in the same order). @category plans */
export const plan = (
  params: FisherParams,
  models: ReadonlyArray<Float32Array>,
  fishers: ReadonlyArray<Float32Array>,
  tensor: string
): Result.Result<FisherPlan, MergeKernelError> => {
  const bad = (parameter: string, detail: string) => Result.fail(new InvalidMergeParameter({ method: METHOD, tensor, parameter, detail }))
  if (models.length === 0) return Result.fail(new MergeInputMismatch({ method: METHOD, tensor, detail: "no models to merge" }))
  if (fishers.length !== models.length) {
    return Result.fail(new MergeInputMismatch({ method: METHOD, tensor, detail: `${fishers.length} Fisher tensors for ${models.length} models` }))
  }
  const n = models[0]!.length
  const problem = lengthProblem(models, n, "model") ?? lengthProblem(fishers, n, "Fisher tensor")
  if (problem !== undefined) return Result.fail(new MergeInputMismatch({ method: METHOD, tensor, detail: problem }))
  const weights = params.weights ?? models.map(() => 1)
  const epsilon = params.epsilon ?? 1e-6
  if (weights.length !== models.length) return bad("weights", `${weights.length} weights for ${models.length} models`)
  if (!weights.every((w) => Number.isFinite(w) && w >= 0) || !weights.some((w) => w > 0)) {
    return bad("weights", `must be finite, non-negative and not all zero, got [${weights.join(", ")}]`)
  }
  if (!(Number.isFinite(epsilon) && epsilon > 0)) return bad("epsilon", `must be a finite number > 0, got ${epsilon}`)
  return Result.succeed({ weights: [...weights], epsilon })
}

/** Writes the Fisher-weighted average on `[start, end)`. @category kernels */
export const apply = (
  plan: FisherPlan,
  out: Float32Array,
  models: ReadonlyArray<Float32Array>,
  fishers: ReadonlyArray<Float32Array>,
  start = 0,
  end = out.length
): void => {
  const eps = plan.epsilon
  const numerator = new Float64Array(CHUNK)
  const denominator = new Float64Array(CHUNK)
  for (let j0 = start; j0 < end; j0 += CHUNK) {
    const m = Math.min(CHUNK, end - j0)
    numerator.fill(0, 0, m)
    denominator.fill(0, 0, m)
    for (let i = 0; i < models.length; i++) {
      const w = plan.weights[i]!
      if (w === 0) continue
      const x = models[i]!
      const f = fishers[i]!
      for (let k = 0, j = j0; k < m; k++, j++) {
        const fj = f[j]!
        const weight = w * (fj > eps ? fj : eps)
        numerator[k] = numerator[k]! + weight * x[j]!
        denominator[k] = denominator[k]! + weight
      }
    }
    for (let k = 0, j = j0; k < m; k++, j++) out[j] = numerator[k]! / denominator[k]!
  }
}
