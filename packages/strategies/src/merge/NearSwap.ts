/**
 * `merge/nearswap` (mergekit's `nearswap`): θ = w·θ₁ + (1 − w)·base with
 * w = clamp(t / max(|base − θ₁|, 1e-6), 0, 1) per entry: entries within `t` of the base are taken
 * from the model, the others move towards it by `t`. See `kernels/NearSwap.ts`.
 *
 * @since 0.1.0
 */
import { Effect, Result } from "effect"
import { InvalidMergeParameter } from "./kernels/KernelError.ts"
import * as Kernel from "./kernels/NearSwap.ts"
import * as Parallel from "./kernels/Parallel.ts"
import * as Method from "./Method.ts"
import { NonNegative } from "./rules/ParamValue.ts"

// mergekit requires `t`; a tensor without one is refused before anything is read.
const distance = (tensor: Pick<Method.TensorParams, "name" | "value">) => {
  const t = tensor.value("t")
  return t === undefined
    ? Result.fail(new InvalidMergeParameter({ method: "merge/nearswap", tensor: tensor.name, parameter: "t", detail: "needs a value (e.g. t: 0.001); a filter list needs a catch-all value" }))
    : Result.succeed(t)
}

/** @category stage kinds */
export const NearSwap = Method.define({
  kind: "merge/nearswap",
  description: "NearSwap: take the model's entries within t of the base, move the others towards it by t.",
  reference: "https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001",
  base: "required",
  minModels: 1,
  maxModels: 1,
  rules: ["t"],
  ranges: { t: NonNegative },
  docs: { t: { description: "the distance from the base within which the model's entries are taken whole; required, as in mergekit" } },
  fields: {},
  checkTensor: (tensor) => distance(tensor),
  merge: (job) => {
    const t = distance(job)
    if (Result.isFailure(t)) return Result.fail(t.failure)
    const out = new Float32Array(job.base!.length)
    Kernel.apply(t.success, out, job.base!, job.models[0]!)
    return Result.succeed(out)
  },
  parallel: (pool, job, _params, out) => Effect.flatMap(Effect.fromResult(distance(job)), (t) => Parallel.nearSwap(pool, t, out, job.base!, job.models[0]!))
})
