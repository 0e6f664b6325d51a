/**
 * `merge/passthrough`: θ = s·θ₀ — copies one model, optionally scaling tensors (`scale` takes
 * rules, e.g. `- filter: "layers.3." value: 0`), as mergekit's passthrough.
 *
 * @since 0.1.0
 */
import { Result } from "effect"
import * as Kernel from "./kernels/Passthrough.ts"
import * as Method from "./Method.ts"

/** @category stage kinds */
export const Passthrough = Method.define({
  kind: "merge/passthrough",
  description: "Copies a model, scaling the tensors that `scale` rules select.",
  base: "none",
  minModels: 1,
  maxModels: 1,
  rules: ["scale"],
  docs: { scale: { description: "multiplies the tensors it selects", default: 1 } },
  fields: {},
  merge: (job) => {
    const planned = Kernel.plan({ scale: job.value("scale") ?? 1 }, job.name)
    if (Result.isFailure(planned)) return Result.fail(planned.failure)
    const input = job.models[0]!
    const out = new Float32Array(input.length)
    Kernel.apply(planned.success, out, input)
    return Result.succeed(out)
  }
})
