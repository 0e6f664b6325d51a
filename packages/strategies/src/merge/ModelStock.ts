/**
 * `merge/model-stock` (Jang et al. 2024): θ = t·mean(θᵢ) + (1−t)·θ₀ with t = N·cos/(1 + (N−1)·cos),
 * cos the mean pairwise cosine of the task vectors θᵢ − θ₀; needs a base and ≥ 2 fine-tunes.
 * `filter_wise: true` computes t per output row.
 *
 * @since 0.1.0
 */
import { Stage } from "@crucible/core"
import { Effect, Result, Schema } from "effect"
import * as Kernel from "./kernels/ModelStock.ts"
import * as Parallel from "./kernels/Parallel.ts"
import * as Method from "./Method.ts"

/** @category stage kinds */
export const ModelStock = Method.define({
  kind: "merge/model-stock",
  description: "Model stock: interpolate between the base and the fine-tunes' mean by their task vectors' mean cosine.",
  reference: "https://arxiv.org/abs/2403.19522",
  base: "required",
  minModels: 2,
  rules: [],
  fields: { filter_wise: Schema.Boolean.annotate({ description: "one interpolation ratio per output row (filter) instead of per tensor" }).pipe(Stage.withDefault(false)) },
  merge: (job, params) => {
    const rowLength = Kernel.rowLength(job.shape, { filterWise: params.filter_wise })
    const planned = Kernel.plan(Kernel.statistics(job.models, job.base!, rowLength), job.models.length, rowLength, job.name)
    if (Result.isFailure(planned)) return Result.fail(planned.failure)
    const out = new Float32Array(job.base!.length)
    Kernel.apply(planned.success, out, job.base!, job.models)
    return Result.succeed(out)
  },
  parallel: (pool, job, params, out) => Effect.asVoid(Parallel.modelStock(pool, { filterWise: params.filter_wise }, job.shape, out, job.base!, job.models, job.name))
})
