/**
 * `load`: a model from a checkpoint — a safetensors file, a sharded checkpoint's index, a Hugging
 * Face snapshot folder, a PyTorch `.pt`/`.bin` (read by an allowlist unpickler, never executed) or
 * a TF.js `model.json`. Only headers are read here; tensors are read lazily by the stages that
 * consume the model, and the files stay open until the last of them is done.
 *
 * @since 0.1.0
 */
import { Formats, Port, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"

/** @category stage kinds */
export const Load = Stage.define({
  kind: "load",
  version: 1,
  description: "Reads a model checkpoint lazily (safetensors, sharded, HF folder, PyTorch, TF.js): headers now, tensors when a stage reads them.",
  params: Schema.Struct({
    /** The checkpoint file or folder, relative to the pipeline file. */
    path: Schema.String,
    /** For a PyTorch checkpoint holding several dicts: the dotted key of the state dict (e.g. `model` or `state_dict`). */
    key: Schema.optional(Schema.String)
  }),
  reads: (params) => [{ file: params.path }],
  inputs: {},
  output: Port.ModelPort,
  resources: { lazy: true },
  run: Effect.fn("Load.run")(function* ({ params, resolvePath }) {
    const file = resolvePath(params.path)
    yield* Effect.annotateCurrentSpan({ "crucible.io.path": file })
    return yield* Formats.readModel(file, params.key === undefined ? {} : { key: params.key })
  })
})
