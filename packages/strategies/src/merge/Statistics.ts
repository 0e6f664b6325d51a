/**
 * Merges weighted by statistics of the data each model saw:
 * - `merge/fisher`: θ = Σ wᵢF̃ᵢθᵢ / Σ wᵢF̃ᵢ with F̃ = max(F, ε), F the diagonal Fisher information
 *   (Matena & Raffel 2022). `statistics`: one model per merged model holding a tensor of the same
 *   name and shape as each parameter; parameters without one are averaged with `weights`.
 * - `merge/regmean`: per linear layer W = (Σ WᵢG̃ᵢ)(Σ G̃ᵢ)⁻¹ with Gᵢ the Gram matrix of the layer's
 *   inputs and off-diagonals scaled by `alpha` (Jin et al. 2023). `statistics`: one model per merged
 *   model holding `<layer>.gram` `[in, in]` for `<layer>.weight` `[out, in]` (as `statistics/gram`
 *   computes); every other tensor is averaged, as in the paper.
 *
 * @since 0.1.0
 */
import { Stage } from "@crucible/core"
import { Effect, Result, Schema } from "effect"
import * as Fisher from "./kernels/Fisher.ts"
import * as Linear from "./kernels/Linear.ts"
import * as Parallel from "./kernels/Parallel.ts"
import * as RegMeanKernel from "./kernels/RegMean.ts"
import type { Job } from "./Method.ts"
import * as Method from "./Method.ts"
import { NonNegative } from "./rules/ParamValue.ts"

const averagePlan = (job: Job) => Linear.plan({ weights: job.perModel("weights", 1), normalize: true }, job.models.length, job.name)

const fisherPlan = (job: Job, statistics: ReadonlyArray<Float32Array>, epsilon: number | undefined) =>
  Fisher.plan({ weights: job.perModel("weights", 1), ...(epsilon === undefined ? {} : { epsilon }) }, job.models, statistics, job.name)

const average = (job: Job) => {
  const planned = averagePlan(job)
  if (Result.isFailure(planned)) return Result.fail(planned.failure)
  const out = new Float32Array(job.models[0]!.length)
  Linear.apply(planned.success, out, job.models)
  return Result.succeed(out)
}

/** @category stage kinds */
export const FisherMerge = Method.define({
  kind: "merge/fisher",
  description: "Fisher-weighted averaging: each parameter weighted by its diagonal Fisher information.",
  reference: "https://arxiv.org/abs/2111.09832",
  base: "none",
  minModels: 2,
  rules: ["weights"],
  docs: { weights: { description: "each model's weight", default: 1 } },
  ranges: { weights: NonNegative },
  fields: { epsilon: Schema.Finite.check(Schema.isGreaterThan(0)).annotate({ description: "the floor on the Fisher values" }).pipe(Stage.withDefault(1e-6)) },
  statistics: { description: "the diagonal Fisher of each model, tensors named as its parameters", tensorFor: (name) => name },
  merge: (job, params) => {
    if (job.statistics === undefined) return average(job)
    const planned = fisherPlan(job, job.statistics, params.epsilon)
    if (Result.isFailure(planned)) return Result.fail(planned.failure)
    const out = new Float32Array(job.models[0]!.length)
    Fisher.apply(planned.success, out, job.models, job.statistics)
    return Result.succeed(out)
  },
  parallel: (pool, job, params, out) =>
    job.statistics === undefined
      ? Effect.flatMap(Effect.fromResult(averagePlan(job)), (plan) => Parallel.weightedSum(pool, out, job.models, plan.coefficients))
      : Effect.flatMap(Effect.fromResult(fisherPlan(job, job.statistics, params.epsilon)), (plan) => Parallel.fisher(pool, plan, out, job.models, job.statistics!))
})

/** @category stage kinds */
export const RegMean = Method.define({
  kind: "merge/regmean",
  description: "RegMean: per linear layer, the weight that best fits every model's outputs on its own inputs.",
  reference: "https://arxiv.org/abs/2212.09849",
  base: "none",
  minModels: 2,
  rules: ["weights"],
  docs: { weights: { description: "each model's weight", default: 1 } },
  fields: { alpha: Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 })).annotate({ description: "RegMean α: the weight kept on the Gram matrices off their diagonal" }).pipe(Stage.withDefault(0.9)) },
  statistics: { description: "each model's Gram matrices <layer>.gram of its linear layers' inputs", tensorFor: (name) => name.replace(/\.weight$/, ".gram") },
  merge: (job, params) => {
    if (job.statistics === undefined || !job.name.endsWith(".weight") || job.shape.length !== 2) return average(job)
    const [rows, columns] = job.shape as [number, number]
    const merged = RegMeanKernel.merge({ alpha: params.alpha }, job.models, job.statistics, rows, columns, job.name)
    return Result.isFailure(merged) ? Result.fail(merged.failure) : Result.succeed(merged.success.weight)
  }
})
