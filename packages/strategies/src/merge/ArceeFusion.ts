/**
 * `merge/arcee-fusion` (mergekit's `arcee_fusion`): θ = base + m ⊙ (θ₁ − base), m = [s ≥ median(s) +
 * 1.5·IQR(s)], s = |θ₁ − base| · KL(softmax(θ₁) ‖ softmax(base)) per row: the model's changes are
 * taken only where they are outliers of importance. See `kernels/ArceeFusion.ts`.
 *
 * @since 0.1.0
 */
import { Effect, Result } from "effect"
import * as Kernel from "./kernels/ArceeFusion.ts"
import * as Parallel from "./kernels/Parallel.ts"
import * as Method from "./Method.ts"

/** @category stage kinds */
export const ArceeFusion = Method.define({
  kind: "merge/arcee-fusion",
  description: "Arcee Fusion: take the model's changes to the base where their importance (|Δ|·row KL divergence) is an outlier, above median + 1.5·IQR.",
  reference: "https://github.com/arcee-ai/mergekit/blob/main/mergekit/merge_methods/arcee_fusion.py",
  base: "required",
  minModels: 1,
  maxModels: 1,
  rules: [],
  fields: {},
  merge: (job) => {
    const { out, threshold, taken } = Kernel.apply(job.shape, job.base!, job.models[0]!)
    job.diagnose({ threshold, taken })
    return Result.succeed(out)
  },
  parallel: (pool, job, _params, out) =>
    Effect.map(Parallel.arceeFusion(pool, job.shape, job.base!, job.models[0]!, out), ({ threshold, taken }) => job.diagnose({ threshold, taken }))
})
