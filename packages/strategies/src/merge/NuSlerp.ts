/**
 * `merge/nuslerp` (mergekit's `nuslerp`): θ = slerp(t, θ₀, θ₁) with t = w₁/(w₀ + w₁), per row
 * (default), per column (`nuslerp_row_wise`) or over the whole tensor (`nuslerp_flatten`, the
 * default); with a base, θ = base + slerp(t, θ₀ − base, θ₁ − base). See `kernels/NuSlerp.ts`.
 *
 * @since 0.1.0
 */
import { Stage } from "@crucible/core"
import { Effect, Result, Schema } from "effect"
import { InvalidMergeParameter } from "./kernels/KernelError.ts"
import * as Kernel from "./kernels/NuSlerp.ts"
import * as Parallel from "./kernels/Parallel.ts"
import * as Method from "./Method.ts"

// mergekit requires `weight` for every model; a tensor without both is refused before anything is read.
const factor = (tensor: Method.TensorParams) => {
  const weights = [tensor.value("weight", 0), tensor.value("weight", 1)]
  if (weights.some((w) => w === undefined)) {
    return Result.fail(new InvalidMergeParameter({ method: "merge/nuslerp", tensor: tensor.name, parameter: "weight", detail: "needs a weight for each of the two models (e.g. weight: [0.5, 0.5]); a filter list needs a catch-all value" }))
  }
  return Kernel.interpolationFactor(weights as Array<number>, tensor.name)
}

/** @category stage kinds */
export const NuSlerp = Method.define({
  kind: "merge/nuslerp",
  description: "NuSLERP: slerp of two models (of their task vectors with a base) by t = w₁/(w₀+w₁), per row, per column or over the whole tensor.",
  reference: "https://github.com/arcee-ai/mergekit/blob/main/mergekit/merge_methods/nuslerp.py",
  base: "optional",
  minModels: 2,
  maxModels: 2,
  rules: ["weight"],
  docs: { weight: { description: "each model's weight: t = weight[1] / (weight[0] + weight[1]), ½ when they cancel; required, as in mergekit" } },
  fields: {
    nuslerp_flatten: Schema.Boolean.annotate({ description: "interpolate each tensor as one flat vector (false: per row or column)" }).pipe(Stage.withDefault(true)),
    nuslerp_row_wise: Schema.Boolean.annotate({ description: "without flatten: interpolate columns (vectors along the first axis) instead of rows" }).pipe(Stage.withDefault(false))
  },
  checkTensor: (tensor) => factor(tensor),
  merge: (job, params) => {
    const t = factor({ ...job, models: job.models.length })
    if (Result.isFailure(t)) return Result.fail(t.failure)
    const [a, b] = job.models as [Float32Array, Float32Array]
    const out = new Float32Array(a.length)
    Kernel.apply({ t: t.success, flatten: params.nuslerp_flatten, rowWise: params.nuslerp_row_wise }, job.shape, out, a, b, job.base)
    job.diagnose({ t: t.success })
    return Result.succeed(out)
  },
  parallel: (pool, job, params, out) =>
    Effect.gen(function* () {
      const t = yield* Effect.fromResult(factor({ ...job, models: job.models.length }))
      const [a, b] = job.models as [Float32Array, Float32Array]
      yield* Parallel.nuSlerp(pool, { t, flatten: params.nuslerp_flatten, rowWise: params.nuslerp_row_wise }, job.shape, out, a, b, job.base)
      job.diagnose({ t })
    })
})
