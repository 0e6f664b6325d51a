/**
 * Passthrough (mergekit's layer stacking): `θ = s·θ₀`, one input copied with an optional scale
 * (e.g. 0 to silence a duplicated layer's output projection).
 *
 * @since 0.1.0
 */
import { Result } from "effect"
import { InvalidMergeParameter } from "./KernelError.ts"
import { weightedSum } from "./WeightedSum.ts"

/** @category params */
export interface PassthroughParams {
  /** Multiplies the tensor (default 1: an exact copy). */
  readonly scale?: number
}

/** @category plans */
export interface PassthroughPlan {
  readonly coefficients: readonly [number]
}

/** Validates the scale. @category plans */
export const plan = (params: PassthroughParams, tensor: string): Result.Result<PassthroughPlan, InvalidMergeParameter> => {
  const scale = params.scale ?? 1
  if (!Number.isFinite(scale)) {
    return Result.fail(new InvalidMergeParameter({ method: "passthrough", tensor, parameter: "scale", detail: `must be a finite number, got ${scale}` }))
  }
  return Result.succeed({ coefficients: [scale] })
}

/** `out[j] = s·input[j]` on `[start, end)`; with s = 1 an exact copy. @category kernels */
export const apply = (plan: PassthroughPlan, out: Float32Array, input: Float32Array, start = 0, end = out.length): void => {
  if (plan.coefficients[0] === 1) out.set(input.subarray(start, end), start)
  else weightedSum(out, [input], plan.coefficients, start, end)
}
