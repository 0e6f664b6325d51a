/**
 * `convert`: a checkpoint from one format (or dtype, or sharding) to another in one stage —
 * `load` and `save` composed, for pipelines and for `crucible convert IN OUT`. It takes every
 * parameter of `save`, so a folder output (`path: out/`) writes the same Hugging Face folder, with
 * `config_from`, `tokenizer_from` and `chat_template` (added without a version bump: no earlier output changes).
 *
 * @since 0.1.0
 */
import { Port, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"
import { Load } from "./Load.ts"
import { Save } from "./Save.ts"

/** @category stage kinds */
export const Convert = Stage.define({
  kind: "convert",
  version: 1,
  description: "Converts a checkpoint: .pt → safetensors, sharded ↔ single, TF.js ↔ safetensors, dtype changes, or to a Hugging Face folder (save's params).",
  params: Schema.Struct({
    /** The input checkpoint (any format `load` reads). */
    from: Load.params.fields.path,
    key: Load.params.fields.key,
    /** The output; the other parameters are `save`'s. */
    path: Save.params.fields.path,
    dtype: Save.params.fields.dtype,
    format: Save.params.fields.format,
    shard_size: Save.params.fields.shard_size,
    metadata: Save.params.fields.metadata,
    // A folder output (`path: out/`) is save's Hugging Face folder: its donor options too.
    config_from: Save.params.fields.config_from,
    tokenizer_from: Save.params.fields.tokenizer_from,
    chat_template: Save.params.fields.chat_template
  }),
  // `path` is the output: not a read; save's config_from, tokenizer_from and a chat_template file are.
  reads: (params) => {
    const { from: _from, key: _key, ...save } = params
    return [{ file: params.from }, ...Stage.readsOf(Save, save)]
  },
  inputs: {},
  output: Port.FilesPort,
  resources: { lazy: true },
  run: Effect.fn("Convert.run")(function* (context) {
    const { from, key, ...save } = context.params
    const model = yield* Load.run({ ...context, params: { path: from, ...(key === undefined ? {} : { key }) }, inputs: {} })
    return yield* Save.run({ ...context, params: save, inputs: { model } })
  })
})
