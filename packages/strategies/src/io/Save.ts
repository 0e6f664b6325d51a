/**
 * `save`: writes a model — safetensors (one file, or shards plus an index past `shard_size`) or a
 * TF.js `model.json` — streaming tensor by tensor, atomically: every output file appears, or
 * none; never over one of the model's own input files.
 *
 * @since 0.1.0
 */
import { ByteSize, Cast, DType, Formats, Model, Port, Stage, TensorRef } from "@crucible/core"
import { Effect, Result, Schema } from "effect"

/** A size written as `2GB`, `500MiB` or a number of bytes. */
const ByteSizeParam = Schema.Union([Schema.String, Schema.Finite]).pipe(
  Schema.check(Schema.makeFilter((v: string | number) => Result.isSuccess(ByteSize.parseByteSize(v)) || `"${v}" is not a size (use e.g. 2GB, 500MiB or a number of bytes)`))
)

/** @category stage kinds */
export const Save = Stage.define({
  kind: "save",
  version: 1,
  description: "Writes a model (safetensors, sharded safetensors, or TF.js), atomically.",
  params: Schema.Struct({
    /** The output file (a `model.json` path for TF.js), relative to the pipeline file. */
    path: Schema.String,
    /** Convert floating-point tensors to this dtype on the way out (F32, F16, BF16, F64, or torch names). */
    dtype: Schema.optional(DType.WritableDTypeName),
    /** `safetensors` (default) or `tfjs` (default for a path ending in `.json`). */
    format: Schema.optional(Schema.Literals(["safetensors", "tfjs"])),
    /** Largest shard, e.g. `2GB`: past it, shards plus an index are written. */
    shard_size: Schema.optional(ByteSizeParam),
    /** Extra metadata (`__metadata__` in safetensors). */
    metadata: Schema.optional(Schema.Record(Schema.String, Schema.String))
  }),
  inputs: { model: Port.one(Port.ModelPort, "the model to write") },
  output: Port.FilesPort,
  // In a plan (dryRun) it only reports what it would write (every file, sized from the headers)
  // and the model it would read, so the planner may run it.
  resources: { lazy: true },
  run: Effect.fn("Save.run")(function* ({ id, params, inputs, resolvePath, dryRun }) {
    const target = resolvePath(params.path)
    const dtype = params.dtype === undefined ? undefined : DType.parseWritable(params.dtype)
    const model = dtype === undefined ? inputs.model : Cast.cast(inputs.model, dtype)
    const bytes = Model.totalBytes(model)
    yield* Effect.annotateCurrentSpan({ "crucible.io.path": target, "crucible.tensors.out": model.tensors.size, "crucible.bytes.out": bytes })
    const options = {
      ...(params.format === undefined ? {} : { format: params.format }),
      ...(params.shard_size === undefined ? {} : { shardSize: Result.getOrThrow(ByteSize.parseByteSize(params.shard_size)) }),
      metadata: { ...params.metadata, "crucible.stage": id }
    }
    if (dryRun) {
      const planned = yield* Formats.planWrite(target, model, options)
      return { files: planned.files.map((f) => ({ ...f, sha256: "" })), planned: { model, workingSetBytes: planned.workingSetBytes } }
    }
    let bytesWritten = 0
    return yield* Formats.writeModel(target, model, {
      ...options,
      onTensorWritten: (t, i, total) => {
        bytesWritten += TensorRef.byteLength(t)
        return Stage.reportProgress({ stage: id, done: i + 1, total, unit: "tensors", bytes: bytesWritten, totalBytes: bytes, detail: t.name })
      }
    }).pipe(Effect.withSpan("Save.write", { attributes: { "crucible.io.path": target } }))
  })
})
