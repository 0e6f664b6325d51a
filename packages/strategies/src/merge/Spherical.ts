/**
 * Spherical interpolation:
 * - `merge/slerp`: θ = sin((1−t)Ω)/sin Ω·a + sin(tΩ)/sin Ω·b, cos Ω = ⟨a,b⟩/(‖a‖‖b‖) per tensor;
 *   a lerp when nearly colinear; with a base, on task vectors (θ = base + slerp(t, a−base, b−base)).
 *   Each tensor reports Ω and the two norms as a `merge.diagnostics` span event.
 * - `merge/multislerp`: the weighted spherical mean of N models (mergekit's multislerp, in closed form).
 *
 * @since 0.1.0
 */
import { Stage } from "@crucible/core"
import { Effect, Result, Schema } from "effect"
import * as GpuSlerp from "./gpu/Slerp.ts"
import * as Multi from "./kernels/Multislerp.ts"
import * as Parallel from "./kernels/Parallel.ts"
import * as Kernel from "./kernels/Slerp.ts"
import * as Method from "./Method.ts"
import { Unit } from "./rules/ParamValue.ts"

/** @category stage kinds */
export const Slerp = Method.define({
  kind: "merge/slerp",
  description: "Spherical interpolation of two models by t (0 → first, 1 → second); with a base, of their task vectors.",
  reference: "https://en.wikipedia.org/wiki/Slerp",
  base: "optional",
  minModels: 2,
  maxModels: 2,
  rules: ["t"],
  ranges: { t: Unit },
  docs: { t: { description: "interpolation factor: 0 gives models[0], 1 gives models[1]; a tensor no rule gives a t keeps models[0]" } },
  fields: { dot_threshold: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThan(1)).annotate({ description: "past this |cos| the two are interpolated linearly" }).pipe(Stage.withDefault(0.9995)) },
  // mergekit's `base_model` for slerp is the t = 0 endpoint; here `base` is what task vectors are
  // taken from, so a base that is also one of the two models is almost surely the mergekit habit.
  checkParams: ({ inputs }) => {
    const base = inputs.base?.[0]
    const at = base === undefined ? -1 : inputs.models.indexOf(base)
    return at < 0 ? [] : [{
      path: ["base"],
      message: `"${base}" is both the base and models[${at}]. Here base is what task vectors are taken from ` +
        `(θ = base + slerp(t, a − base, b − base)); mergekit's slerp base_model is the t = 0 endpoint instead. ` +
        `For a plain slerp, list the two models in models without a base (t = 0 gives models[0]); ` +
        `to slerp task vectors, give a base that is not one of the two models`
    }]
  },
  merge: (job, params) => {
    const [a, b] = job.models as [Float32Array, Float32Array]
    const t = job.value("t")
    if (t === undefined) return Result.succeed(a.slice()) // unmatched tensors with unmatched: merge keep the first model
    const planned = Kernel.plan(slerpParams(t, params.dot_threshold), Kernel.statistics(a, b, job.base), job.base !== undefined, job.name)
    if (Result.isFailure(planned)) return Result.fail(planned.failure)
    const out = new Float32Array(a.length)
    Kernel.apply(planned.success, out, a, b, job.base)
    job.diagnose(Kernel.diagnostics(planned.success, job.base !== undefined))
    return Result.succeed(out)
  },
  parallel: (pool, job, params, out) => {
    const [a, b] = job.models as [Float32Array, Float32Array]
    const t = job.value("t")
    return t === undefined
      ? Parallel.copy(pool, out, a)
      : Effect.map(Parallel.slerp(pool, slerpParams(t, params.dot_threshold), out, a, b, job.base, job.name), (plan) => job.diagnose(Kernel.diagnostics(plan, job.base !== undefined)))
  },
  gpu: (device, job, params) => {
    const [a, b] = job.models as [Float32Array, Float32Array]
    const t = job.value("t")
    // A tensor no rule gives a t keeps the first model: a copy, on the CPU.
    if (t === undefined) return Effect.undefined
    return Effect.map(GpuSlerp.merge(device, slerpParams(t, params.dot_threshold), a, b, job.base, job.name), ({ out, plan }) => {
      job.diagnose(Kernel.diagnostics(plan, job.base !== undefined))
      return out
    })
  }
})

const slerpParams = (t: number, dotThreshold: number | undefined): Kernel.SlerpParams => ({ t, ...(dotThreshold === undefined ? {} : { dotThreshold }) })

/** @category stage kinds */
export const Multislerp = Method.define({
  kind: "merge/multislerp",
  description: "Weighted spherical mean of N models (of their task vectors with a base).",
  reference: "https://github.com/arcee-ai/mergekit",
  base: "optional",
  minModels: 2,
  rules: ["weights"],
  docs: { weights: { description: "each model's weight", default: 1 } },
  fields: { normalize_weights: Schema.Boolean.annotate({ description: "divide the weights by their sum" }).pipe(Stage.withDefault(true)) },
  merge: (job, params) => {
    const planned = Multi.plan(multislerpParams(job, params.normalize_weights), Multi.statistics(job.models, job.base), job.base !== undefined, job.name)
    if (Result.isFailure(planned)) return Result.fail(planned.failure)
    const out = new Float32Array(job.models[0]!.length)
    Multi.apply(planned.success, out, job.models, job.base)
    return Result.succeed(out)
  },
  parallel: (pool, job, params, out) => Effect.asVoid(Parallel.multislerp(pool, multislerpParams(job, params.normalize_weights), out, job.models, job.base, job.name))
})

const multislerpParams = (job: Method.Job, normalizeWeights: boolean | undefined): Multi.MultislerpParams => ({
  weights: job.perModel("weights", 1),
  ...(normalizeWeights === undefined ? {} : { normalizeWeights })
})
