/**
 * `merge/sce` (mergekit's `sce`, from FuseLLM): keep the `select_topk` fraction of entries with the
 * largest variance across the task vectors, weigh each model by its mean squared task vector,
 * erase entries whose sign disagrees with the summed sign:
 * θ = base + Σ mᵢwᵢτᵢ / Σ mᵢwᵢ. See `kernels/Sce.ts`.
 *
 * @since 0.1.0
 */
import { Effect, Result } from "effect"
import * as Parallel from "./kernels/Parallel.ts"
import * as Kernel from "./kernels/Sce.ts"
import * as Method from "./Method.ts"
import { Unit } from "./rules/ParamValue.ts"

/** @category stage kinds */
export const Sce = Method.define({
  kind: "merge/sce",
  description: "SCE: select the highest-variance entries of the task vectors, weigh models by their mean squared task vector, erase minority signs.",
  reference: "https://arxiv.org/abs/2408.07990",
  base: "required",
  minModels: 1,
  rules: ["select_topk"],
  ranges: { select_topk: Unit },
  docs: { select_topk: { description: "fraction of the entries with nonzero variance across models that are kept, largest variance first", default: 1 } },
  fields: {},
  merge: (job) => {
    const { out, kept, weights } = Kernel.apply(job.value("select_topk") ?? 1, job.base!, job.models)
    diagnose(job, kept, weights)
    return Result.succeed(out)
  },
  parallel: (pool, job, _params, out) =>
    Effect.map(Parallel.sce(pool, job.value("select_topk") ?? 1, job.base!, job.models, out), ({ kept, weights }) => diagnose(job, kept, weights))
})

const diagnose = (job: Method.Job, kept: number, weights: ReadonlyArray<number>) =>
  job.diagnose({ kept, ...Object.fromEntries(weights.map((w, i) => [`weight.${i}`, w])) })
