/**
 * `load`: a model from a checkpoint file. Only the header is read here; tensors are read lazily
 * by the stages that consume the model, and the file stays open until the last of them is done.
 *
 * @since 0.1.0
 */
import { Port, Safetensors, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"

/** @category stage kinds */
export const Load = Stage.define({
  kind: "load",
  version: 1,
  description: "Reads a model checkpoint (safetensors) lazily: headers now, tensors when a stage reads them.",
  params: Schema.Struct({
    /** The checkpoint, relative to the pipeline file. */
    path: Schema.String
  }),
  inputs: {},
  output: Port.ModelPort,
  resources: { lazy: true },
  run: Effect.fn("Load.run")(function* ({ params, resolvePath }) {
    const file = resolvePath(params.path)
    yield* Effect.annotateCurrentSpan({ "crucible.io.path": file })
    return yield* Safetensors.read(file)
  })
})
