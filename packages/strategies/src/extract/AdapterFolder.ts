/**
 * A PEFT LoRA adapter folder — `adapter_config.json`, `adapter_model.safetensors` and this
 * stage's `reconstruction.json` — written whole or not at all, as every output folder
 * (`hf/AtomicFolder.ts`).
 *
 * @since 0.1.0
 */
import { IoError, Model, Owner, Safetensors, type TensorRef } from "@crucible/core"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as AtomicFolder from "../hf/AtomicFolder.ts"

/** What a PEFT adapter folder holds. @category models */
export interface Adapter {
  /** `adapter_config.json`, as PEFT reads it. */
  readonly config: Readonly<Record<string, unknown>>
  /** The LoRA tensors, in the order they are written. */
  readonly tensors: ReadonlyArray<TensorRef.TensorRef>
  /** `reconstruction.json`: how well the adapter reproduces the fine-tune. */
  readonly reconstruction: Readonly<Record<string, unknown>>
}

/** The files of an adapter folder, in the order they are listed. @category constants */
export const FILE_NAMES = ["adapter_config.json", "adapter_model.safetensors", "reconstruction.json"] as const

/** One file written: its final path, size and sha256. @category models */
export interface WrittenFile {
  readonly path: string
  readonly bytes: number
  readonly sha256: string
}

/**
 * Writes `adapter` to the folder `target` atomically (`hf/AtomicFolder.ts`: assembled in a
 * temporary sibling, renamed into place; a dead writer's temporaries are swept first); returns
 * its files at their final paths. Fails without touching `target` when it is a file, or when it
 * holds one of `inputs` (the models' lazy tensors are read from there).
 *
 * @category writers
 */
export const write = (target: string, adapter: Adapter, inputs: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<WrittenFile>, IoError.IoError | IoError.ModelIoError | TensorRef.TensorError> =>
  Effect.scoped(Effect.gen(function* () {
    yield* refuseTarget(target, inputs)
    yield* AtomicFolder.sweep(target)
    const staging = yield* AtomicFolder.open(target)
    const config = yield* writeJson(path.join(staging.temporary, FILE_NAMES[0]), adapter.config)
    const weights = yield* Safetensors.write(path.join(staging.temporary, FILE_NAMES[1]), Model.make(target, adapter.tensors, { format: "pt" }))
    const reconstruction = yield* writeJson(path.join(staging.temporary, FILE_NAMES[2]), adapter.reconstruction)
    yield* staging.publish
    return [config, { bytes: weights.bytes, sha256: weights.sha256 }, reconstruction].map((f, i) => ({ path: path.join(target, FILE_NAMES[i]!), ...f }))
  }))

const refuseTarget = (target: string, inputs: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const stat = fs.statSync(target, { throwIfNoEntry: false })
    if (stat !== undefined && !stat.isDirectory()) {
      return yield* new IoError.IoError({ file: target, operation: "write an adapter folder", detail: "a file with that name exists; give `path` a folder name" })
    }
    const real = (p: string) => {
      try { return fs.realpathSync(p) } catch { return path.resolve(p) }
    }
    const folder = real(target) + path.sep
    const inside = inputs.find((f) => real(f).startsWith(folder))
    if (inside !== undefined) {
      return yield* new IoError.IoError({ file: target, operation: "overwrite", detail: `it holds ${inside}, which the input models are read from; write the adapter to another folder` })
    }
  })

const writeJson = (file: string, value: unknown) =>
  Effect.try({
    try: () => {
      const bytes = new TextEncoder().encode(JSON.stringify(value, null, 2) + "\n")
      AtomicFolder.writeFileSynced(file, bytes)
      return { bytes: bytes.byteLength, sha256: createHash("sha256").update(bytes).digest("hex") }
    },
    catch: (cause) => new IoError.IoError({ file, operation: "write", detail: IoError.describe(cause) })
  })
