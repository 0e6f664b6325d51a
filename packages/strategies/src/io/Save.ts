/**
 * `save`: writes a model — safetensors (one file, or shards plus an index past `shard_size`), a
 * TF.js `model.json`, or a Hugging Face model folder (`hf/HfFolder.ts`: weights, `config.json`,
 * tokenizer, small files and a model card) — streaming tensor by tensor, atomically: every output
 * file appears, or none; never over one of the model's own input files.
 *
 * A folder is written when `format: hf` is given, or (no format given) when `path` ends with `/`
 * or names an existing folder.
 *
 * @since 0.1.0
 */
import { ByteSize, Cast, DType, Formats, Model, Port, Stage, TensorRef } from "@crucible/core"
import { Effect, Result, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as HfFolder from "../hf/HfFolder.ts"
import { HfFolderError } from "../hf/HfFolderError.ts"

/** A size written as `2GB`, `500MiB` or a number of bytes. */
const ByteSizeParam = Schema.Union([Schema.String, Schema.Finite]).pipe(
  Schema.check(Schema.makeFilter((v: string | number) => Result.isSuccess(ByteSize.parseByteSize(v)) || `"${v}" is not a size (use e.g. 2GB, 500MiB or a number of bytes)`))
)

/** A `chat_template` holding a `{` is the Jinja text itself, a mergekit name (chatml…) its text (HfFolder resolves it); any other value is a file holding it. */
const isTemplateText = (value: string): boolean => value.includes("{") || HfFolder.isTemplateName(value)

/** @category stage kinds */
export const Save = Stage.define({
  kind: "save",
  version: 2,
  description: "Writes a model (safetensors, sharded safetensors, TF.js, or a Hugging Face folder with config, tokenizer and model card), atomically.",
  params: Schema.Struct({
    /** The output file (a `model.json` path for TF.js), or folder (ending in `/`), relative to the pipeline file. */
    path: Schema.String,
    /** Convert floating-point tensors to this dtype on the way out (F32, F16, BF16, F64, or torch names). */
    dtype: Schema.optional(DType.WritableDTypeName),
    /** `safetensors` (default), `tfjs` (default for a path ending in `.json`) or `hf` (default for a path ending in `/` or naming a folder). */
    format: Schema.optional(Schema.Literals(["safetensors", "tfjs", "hf"])),
    /** Largest shard, e.g. `2GB`: past it, shards plus an index are written. `hf` default: 5·10⁹ parameters. */
    shard_size: Schema.optional(ByteSizeParam),
    /** Extra metadata (`__metadata__` in safetensors). */
    metadata: Schema.optional(Schema.Record(Schema.String, Schema.String)),
    /** `hf`: the Hugging Face folder whose config.json and small files the output takes (default: the model's donor, the base or first input folder). */
    config_from: Schema.optional(Schema.String),
    /** `hf`: the folder whose tokenizer files the output takes (default: the donor's). */
    tokenizer_from: Schema.optional(Schema.String),
    /** `hf`: a chat template set in tokenizer_config.json: the Jinja text (anything holding a `{`), a mergekit name (chatml, llama3, mistral, alpaca, exaone), or a file holding it. */
    chat_template: Schema.optional(Schema.String)
  }),
  reads: (params) => [
    ...(params.config_from === undefined ? [] : [{ file: params.config_from }]),
    ...(params.tokenizer_from === undefined ? [] : [{ file: params.tokenizer_from }]),
    ...(params.chat_template === undefined || isTemplateText(params.chat_template) ? [] : [{ file: params.chat_template }])
  ],
  inputs: { model: Port.one(Port.ModelPort, "the model to write") },
  output: Port.FilesPort,
  // In a plan (dryRun) it only reports what it would write (every file, sized from the headers)
  // and the model it would read, so the planner may run it.
  resources: { lazy: true },
  run: Effect.fn("Save.run")(function* ({ id, params, inputs, resolvePath, dryRun, pipeline }) {
    const target = resolvePath(params.path)
    const dtype = params.dtype === undefined ? undefined : DType.parseWritable(params.dtype)
    const model = dtype === undefined ? inputs.model : Cast.cast(inputs.model, dtype)
    const bytes = Model.totalBytes(model)
    yield* Effect.annotateCurrentSpan({ "crucible.io.path": target, "crucible.tensors.out": model.tensors.size, "crucible.bytes.out": bytes })
    const shardSize = params.shard_size === undefined ? undefined : Result.getOrThrow(ByteSize.parseByteSize(params.shard_size))
    let bytesWritten = 0
    const onTensorWritten = (t: TensorRef.TensorRef, i: number, total: number) => {
      bytesWritten += TensorRef.byteLength(t)
      return Stage.reportProgress({ stage: id, done: i + 1, total, unit: "tensors", bytes: bytesWritten, totalBytes: bytes, detail: t.name })
    }
    if (isFolder(params, target)) {
      const options: HfFolder.Options = {
        stage: id,
        pipeline,
        provenance: inputs.model.provenance,
        configFrom: params.config_from === undefined ? undefined : resolvePath(params.config_from),
        tokenizerFrom: params.tokenizer_from === undefined ? undefined : resolvePath(params.tokenizer_from),
        chatTemplate: params.chat_template === undefined ? undefined : yield* chatTemplate(params.chat_template, resolvePath),
        shardSize,
        metadata: params.metadata
      }
      if (dryRun) return planned(yield* HfFolder.plan(target, model, options), model)
      return yield* HfFolder.write(target, model, { ...options, onTensorWritten }).pipe(Effect.withSpan("Save.write", { attributes: { "crucible.io.path": target } }))
    }
    const options = {
      ...(params.format === undefined ? {} : { format: params.format as "safetensors" | "tfjs" }),
      ...(shardSize === undefined ? {} : { shardSize }),
      metadata: { ...params.metadata, "crucible.stage": id }
    }
    if (dryRun) return planned(yield* Formats.planWrite(target, model, options), model)
    return yield* Formats.writeModel(target, model, { ...options, onTensorWritten }).pipe(Effect.withSpan("Save.write", { attributes: { "crucible.io.path": target } }))
  })
})

const planned = (plan: Formats.PlannedWrite, model: Model.Model) => ({
  files: plan.files.map((f) => ({ ...f, sha256: "" })),
  planned: { model, workingSetBytes: plan.workingSetBytes }
})

// `format: hf`, or no format and a path that is a folder (a trailing `/`, or one that exists).
const isFolder = (params: { readonly path: string; readonly format?: string | undefined }, target: string): boolean =>
  params.format === "hf" ||
  (params.format === undefined && (params.path.endsWith("/") || params.path.endsWith(path.sep) || fs.statSync(target, { throwIfNoEntry: false })?.isDirectory() === true))

const chatTemplate = (value: string, resolvePath: (p: string) => string): Effect.Effect<string, HfFolderError> =>
  isTemplateText(value)
    ? Effect.succeed(value)
    : Effect.try({
      try: () => fs.readFileSync(resolvePath(value), "utf8"),
      catch: (cause) => new HfFolderError({
        folder: path.dirname(resolvePath(value)),
        file: path.basename(value),
        detail: `chat_template names this file, which cannot be read (${cause instanceof Error ? cause.message : String(cause)}); give the Jinja text itself or an existing file`
      })
    })
