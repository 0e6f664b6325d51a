/**
 * `save`: writes a model as safetensors, streaming tensor by tensor, atomically (a temporary
 * file renamed into place; removed on failure or interruption), never over one of its inputs.
 *
 * @since 0.1.0
 */
import { Cast, DType, Model, Port, Safetensors, Stage, TensorRef } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"

/** The output path is one of the files the model is read from. @category errors */
export class WouldOverwriteInput extends Schema.TaggedError<WouldOverwriteInput>()("WouldOverwriteInput", {
  stage: Schema.String,
  path: Schema.String
}) {
  override get message() {
    return `stage "${this.stage}": refusing to write ${this.path}: it is an input of this pipeline (choose another path)`
  }
}

/** @category stage kinds */
export const Save = Stage.define({
  kind: "save",
  version: 1,
  description: "Writes a model to a safetensors file, atomically.",
  params: Schema.Struct({
    /** The output file, relative to the pipeline file. */
    path: Schema.String,
    /** Convert floating-point tensors to this dtype on the way out (F32, F16, BF16, F64, or torch names). */
    dtype: Schema.optional(DType.WritableDTypeName),
    /** Extra `__metadata__` entries. */
    metadata: Schema.optional(Schema.Record(Schema.String, Schema.String))
  }),
  inputs: { model: Port.one(Port.ModelPort, "the model to write") },
  output: Port.FilesPort,
  // In a plan (dryRun) it only reports what it would write, so the planner may run it.
  resources: { lazy: true },
  run: Effect.fn("Save.run")(function* ({ id, params, inputs, resolvePath, dryRun }) {
    const target = resolvePath(params.path)
    if (inputs.model.files.some((f) => samePath(f, target))) return yield* new WouldOverwriteInput({ stage: id, path: target })
    const dtype = params.dtype === undefined ? undefined : DType.parseWritable(params.dtype)
    const model = dtype === undefined ? inputs.model : Cast.cast(inputs.model, dtype)
    const bytes = Model.totalBytes(model)
    yield* Effect.annotateCurrentSpan({ "crucible.io.path": target, "crucible.tensors.out": model.tensors.size, "crucible.bytes.out": bytes })
    if (dryRun) return { files: [{ path: target, bytes, sha256: "" }] }
    const metadata = { ...params.metadata, "crucible.stage": id }
    let bytesWritten = 0
    const written = yield* Safetensors.write(target, model, {
      metadata,
      onTensorWritten: (t, i, total) => {
        bytesWritten += TensorRef.byteLength(t)
        return Stage.reportProgress({ stage: id, done: i + 1, total, unit: "tensors", bytes: bytesWritten, totalBytes: bytes, detail: t.name })
      }
    }).pipe(
      Effect.withSpan("Save.write", { attributes: { "crucible.io.path": target } })
    )
    return { files: [{ path: written.path, bytes: written.bytes, sha256: written.sha256 }] }
  })
})

const samePath = (a: string, b: string): boolean => {
  const real = (p: string) => {
    try { return fs.realpathSync(p) } catch { return path.resolve(p) }
  }
  return real(a) === real(b)
}
