/**
 * mergekit's NuSLERP: spherical interpolation of two tensors x, y by `t`, one vector at a time:
 * `(sin((1−t)Ω)·x + sin(tΩ)·y) / sin Ω`, `cos Ω = ⟨x/‖x‖, y/‖y‖⟩` (norms clamped at 1e-7),
 * linear `(1−t)·x + t·y` where `|sin Ω| < 1e-8`. The vectors are the whole tensor (`flatten`),
 * its rows (the last axis), or its columns (`rowWise`: the first axis). With a base, x and y are
 * task vectors and the base is added back. All sums are float64, rounded once.
 *
 * @since 0.1.0
 */
import { Result } from "effect"
import { InvalidMergeParameter, type MergeKernelError } from "./KernelError.ts"

/** @category params */
export interface NuSlerpParams {
  /** The interpolation factor: mergekit's `weight[1] / (weight[0] + weight[1])`. */
  readonly t: number
  /** Interpolate columns (vectors along the first axis) instead of rows; ignored when `flatten`. */
  readonly rowWise: boolean
  /** Interpolate the whole tensor as one vector. */
  readonly flatten: boolean
}

const NORM_EPS = 1e-7
const COLINEAR_EPS = 1e-8

/**
 * `t` from the two models' weights as mergekit computes it: w₁ / (w₀ + w₁), or ½ when the weights
 * (nearly) cancel.
 *
 * @category params
 */
export const interpolationFactor = (weights: ReadonlyArray<number>, tensor: string): Result.Result<number, MergeKernelError> => {
  if (weights.length !== 2 || !weights.every(Number.isFinite)) {
    return Result.fail(new InvalidMergeParameter({ method: "nuslerp", tensor, parameter: "weight", detail: `needs two finite weights, got [${weights.join(", ")}]` }))
  }
  const total = weights[0]! + weights[1]!
  return Result.succeed(Math.abs(total) < 1e-6 ? 0.5 : weights[1]! / total)
}

/** How a tensor of `shape` splits into vectors: `count` vectors of `length`, element k of vector r at `r·vectorStep + k·elementStep`. @category layout */
export interface Vectors {
  readonly count: number
  readonly length: number
  readonly vectorStep: number
  readonly elementStep: number
}

/** @category layout */
export const vectors = (shape: ReadonlyArray<number>, params: Pick<NuSlerpParams, "rowWise" | "flatten">): Vectors => {
  const n = shape.reduce((a, b) => a * b, 1)
  if (params.flatten || shape.length <= 1 || n === 0) return { count: 1, length: n, vectorStep: 0, elementStep: 1 }
  if (params.rowWise) {
    const length = shape[0]!
    return { count: n / length, length, vectorStep: 1, elementStep: n / length }
  }
  const length = shape.at(-1)!
  return { count: n / length, length, vectorStep: length, elementStep: 1 }
}

/** Writes the interpolation of `a` and `b` (task vectors over `base` when given) into `out`. @category kernels */
export const apply = (params: NuSlerpParams, shape: ReadonlyArray<number>, out: Float32Array, a: Float32Array, b: Float32Array, base?: Float32Array): void => {
  const { count, length, vectorStep, elementStep } = vectors(shape, params)
  const t = params.t
  const x = new Float64Array(length)
  const y = new Float64Array(length)
  for (let r = 0; r < count; r++) {
    const first = r * vectorStep
    let xx = 0, yy = 0, xy = 0
    for (let k = 0, j = first; k < length; k++, j += elementStep) {
      const origin = base === undefined ? 0 : base[j]!
      const xk = a[j]! - origin, yk = b[j]! - origin
      x[k] = xk
      y[k] = yk
      xx += xk * xk
      yy += yk * yk
      xy += xk * yk
    }
    const cos = xy / (Math.max(Math.sqrt(xx), NORM_EPS) * Math.max(Math.sqrt(yy), NORM_EPS))
    const omega = Math.acos(Math.min(1, Math.max(-1, cos)))
    const sin = Math.sin(omega)
    // Nearly colinear vectors: the sines vanish, so interpolate linearly (as mergekit).
    const [cx, cy] = Math.abs(sin) < COLINEAR_EPS ? [1 - t, t] : [Math.sin((1 - t) * omega) / sin, Math.sin(t * omega) / sin]
    for (let k = 0, j = first; k < length; k++, j += elementStep) {
      out[j] = (base === undefined ? 0 : base[j]!) + cx * x[k]! + cy * y[k]!
    }
  }
}
