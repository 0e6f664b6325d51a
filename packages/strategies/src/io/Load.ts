/**
 * `load`: a model from a checkpoint — a safetensors file, a sharded checkpoint's index, a Hugging
 * Face snapshot folder, a PyTorch `.pt`/`.bin` (read by an allowlist unpickler, never executed) or
 * a TF.js `model.json`. Only headers are read here; tensors are read lazily by the stages that
 * consume the model, and the files stay open until the last of them is done.
 *
 * A model read from a Hugging Face folder (one holding a `config.json`: the path itself, or the
 * folder of a file such as `model.safetensors.index.json`) carries that folder as its
 * `provenance`, so a `save` to a folder can take its config, tokenizer and small files.
 *
 * @since 0.1.0
 */
import { Formats, Model, Port, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"

/** @category stage kinds */
export const Load = Stage.define({
  kind: "load",
  version: 2,
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
    const model = yield* Formats.readModel(file, params.key === undefined ? {} : { key: params.key })
    const folder = hfFolderOf(file)
    return folder === undefined ? model : { ...model, provenance: Model.fromFolder(folder) }
  })
})

/** The Hugging Face folder `file` is (or is in): the one holding a `config.json`. @category getters */
export const hfFolderOf = (file: string): string | undefined => {
  const folder = fs.statSync(file, { throwIfNoEntry: false })?.isDirectory() === true ? file : path.dirname(file)
  return fs.existsSync(path.join(folder, "config.json")) ? folder : undefined
}
