/**
 * Linear merge (model soup, Wortsman et al. 2022): `θ = Σᵢ wᵢ θᵢ / Σᵢ wᵢ`, or `Σᵢ wᵢ θᵢ` without
 * `normalize`. Elementwise: plan the coefficients once, then run {@link apply} on any ranges.
 *
 * @since 0.1.0
 */
import { Result } from "effect"
import { InvalidMergeParameter } from "./KernelError.ts"
import { weightedSum } from "./WeightedSum.ts"

/** @category params */
export interface LinearParams {
  /** One weight per input. */
  readonly weights: ReadonlyArray<number>
  /** Divide by Σ wᵢ (default true). */
  readonly normalize?: boolean
}

/** The coefficient of each input in the output. @category plans */
export interface LinearPlan {
  readonly coefficients: ReadonlyArray<number>
}

const METHOD = "linear"

/**
 * Validates the weights for `models` inputs and computes the coefficients. Fails when a weight is
 * not finite, the count differs, or `normalize` meets weights that sum to (nearly) zero.
 *
 * @category plans
 */
export const plan = (params: LinearParams, models: number, tensor: string): Result.Result<LinearPlan, InvalidMergeParameter> => {
  const fail = (detail: string) => Result.fail(new InvalidMergeParameter({ method: METHOD, tensor, parameter: "weights", detail }))
  const { weights } = params
  if (weights.length !== models) return fail(`${weights.length} weights for ${models} models`)
  if (models === 0) return fail("no models to merge")
  if (!weights.every(Number.isFinite)) return fail(`weights must be finite numbers, got [${weights.join(", ")}]`)
  if (params.normalize === false) return Result.succeed({ coefficients: [...weights] })
  const total = weights.reduce((a, b) => a + b, 0)
  const scale = weights.reduce((a, b) => a + Math.abs(b), 0)
  if (Math.abs(total) <= 1e-12 * Math.max(1, scale)) {
    return fail(`weights [${weights.join(", ")}] sum to ${total}: cannot normalize (set normalize: false or change the weights)`)
  }
  return Result.succeed({ coefficients: weights.map((w) => w / total) })
}

/** `out[j] = Σᵢ cᵢ·inputs[i][j]` on `[start, end)`. @category kernels */
export const apply = (plan: LinearPlan, out: Float32Array, inputs: ReadonlyArray<Float32Array>, start = 0, end = out.length): void =>
  weightedSum(out, inputs, plan.coefficients, start, end)
