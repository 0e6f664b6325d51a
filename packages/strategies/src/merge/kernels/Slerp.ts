/**
 * SLERP, as mergekit computes it: `θ = sin((1−t)Ω)/sin Ω · a + sin(tΩ)/sin Ω · b` with
 * `cos Ω = ⟨a, b⟩ / (‖a‖‖b‖)` over the whole tensor, and plain `(1−t)·a + t·b` when the two are
 * nearly colinear (|cos Ω| > 0.9995). With a base, it interpolates the task vectors:
 * `θ = base + slerp(t, a − base, b − base)`.
 *
 * Two phases: {@link statistics} (a 2×2 Gram matrix, splittable with `Gram.partials`), then
 * {@link plan} turns it into the two or three coefficients of a weighted sum, run by
 * {@link apply} on any ranges. A norm at or below `eps` is left unnormalised in the cosine, as in
 * mergekit, so a zero vector gives cos Ω = 0.
 *
 * @since 0.1.0
 */
import { Result } from "effect"
import * as Gram from "./Gram.ts"
import { InvalidMergeParameter } from "./KernelError.ts"
import { overBase, weightedSum } from "./WeightedSum.ts"

/** @category params */
export interface SlerpParams {
  /** 0 gives `a`, 1 gives `b`; values outside [0, 1] extrapolate along the arc. */
  readonly t: number
  /** |cos Ω| above which the two are treated as colinear (default 0.9995, mergekit's). */
  readonly dotThreshold?: number
  /** Norms at or below this are not normalised (default 1e-8). */
  readonly eps?: number
}

/** @category plans */
export interface SlerpPlan {
  /** Over `[a, b]`, or `[base, a, b]` with a base. */
  readonly coefficients: ReadonlyArray<number>
  /** The angle Ω in radians (NaN when the lerp fallback was taken). */
  readonly omega: number
  /** True when the inputs were nearly colinear and the plan is a lerp. */
  readonly colinear: boolean
  /** cos Ω as compared with the threshold, and the two norms (of the task vectors with a base). */
  readonly cosine: number
  readonly norms: readonly [number, number]
}

const METHOD = "slerp"

/** The 2×2 Gram matrix of `a` and `b` (task vectors with a base). @category statistics */
export const statistics = (a: Float32Array, b: Float32Array, base?: Float32Array): Float64Array => Gram.gram([a, b], base)

/** Coefficients from the statistics; fails on a non-finite `t` or threshold. @category plans */
export const plan = (params: SlerpParams, gram: Float64Array, withBase: boolean, tensor: string): Result.Result<SlerpPlan, InvalidMergeParameter> => {
  const { t } = params
  const threshold = params.dotThreshold ?? 0.9995
  const eps = params.eps ?? 1e-8
  if (!Number.isFinite(t)) {
    return Result.fail(new InvalidMergeParameter({ method: METHOD, tensor, parameter: "t", detail: `must be a finite number, got ${t}` }))
  }
  if (!(threshold >= 0 && threshold < 1)) {
    return Result.fail(new InvalidMergeParameter({ method: METHOD, tensor, parameter: "dotThreshold", detail: `must lie in [0, 1), got ${threshold}` }))
  }
  const na = Math.sqrt(gram[0]!)
  const nb = Math.sqrt(gram[3]!)
  const dot = gram[1]! / ((na > eps ? na : 1) * (nb > eps ? nb : 1))
  const pair = (s0: number, s1: number) => (withBase ? overBase([s0, s1]) : [s0, s1])
  const norms = [na, nb] as const
  if (Math.abs(dot) > threshold) return Result.succeed({ coefficients: pair(1 - t, t), omega: Number.NaN, colinear: true, cosine: dot, norms })
  const omega = Math.acos(dot)
  const sinOmega = Math.sin(omega)
  return Result.succeed({ coefficients: pair(Math.sin(omega - t * omega) / sinOmega, Math.sin(t * omega) / sinOmega), omega, colinear: false, cosine: dot, norms })
}

/**
 * What a merge reports about a tensor (a `merge.diagnostics` event): the angle Ω between the two
 * (radians, also when they were nearly colinear and lerped), whether the lerp was taken, and
 * their norms — `tau_norm.i` for task vectors (with a base), `norm.i` for the models themselves.
 * All from the plan's statistics: nothing more is read.
 *
 * @category plans
 */
export const diagnostics = (plan: SlerpPlan, withBase: boolean): Record<string, number | boolean> => {
  const norm = withBase ? "tau_norm" : "norm"
  return {
    omega: Math.acos(Math.min(1, Math.max(-1, plan.cosine))),
    colinear: plan.colinear,
    [`${norm}.0`]: plan.norms[0],
    [`${norm}.1`]: plan.norms[1]
  }
}

/** Writes the interpolation on `[start, end)`. @category kernels */
export const apply = (
  plan: SlerpPlan,
  out: Float32Array,
  a: Float32Array,
  b: Float32Array,
  base?: Float32Array,
  start = 0,
  end = out.length
): void => weightedSum(out, base === undefined ? [a, b] : [base, a, b], plan.coefficients, start, end)
