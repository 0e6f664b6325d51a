/**
 * A PEFT LoRA adapter folder — `adapter_config.json`, `adapter_model.safetensors` and this
 * stage's `reconstruction.json` — written atomically as a folder: everything goes into a
 * temporary sibling folder, which is flushed and renamed into place only when complete, so a
 * reader sees the old folder or the new one, never a part. An existing folder at the target is
 * moved aside first and removed after the rename (between the two renames the target is briefly
 * absent, never half-written).
 *
 * @since 0.1.0
 */
import { IoError, Model, Owner, Safetensors, type TensorRef } from "@crucible/core"
import { Effect, Exit } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"

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
 * Writes `adapter` to the folder `target` atomically; returns its files at their final paths.
 * Fails without touching `target` when it is a file, or when it holds one of `inputs` (the
 * models' lazy tensors are read from there).
 *
 * @category writers
 */
export const write = (target: string, adapter: Adapter, inputs: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<WrittenFile>, IoError.IoError | IoError.ModelIoError | TensorRef.TensorError> =>
  Effect.gen(function* () {
    yield* refuseTarget(target, inputs)
    const parent = path.dirname(target)
    const staging = path.join(parent, `${Owner.temporaryName(`.${path.basename(target)}`)}.partial`)
    const exit = yield* Effect.exit(Effect.gen(function* () {
      yield* attempt(target, "create", () => fs.mkdirSync(staging, { recursive: true }))
      const config = yield* writeJson(path.join(staging, FILE_NAMES[0]), adapter.config)
      const weights = yield* Safetensors.write(path.join(staging, FILE_NAMES[1]), Model.make(target, adapter.tensors, { format: "pt" }))
      const reconstruction = yield* writeJson(path.join(staging, FILE_NAMES[2]), adapter.reconstruction)
      yield* attempt(target, "flush to disk", () => syncDirectory(staging))
      yield* Effect.uninterruptible(publish(staging, target))
      return [config, { bytes: weights.bytes, sha256: weights.sha256 }, reconstruction].map((f, i) => ({ path: path.join(target, FILE_NAMES[i]!), ...f }))
    }))
    // A failed or interrupted write leaves no staging folder behind.
    if (Exit.isFailure(exit)) yield* Effect.sync(() => fs.rmSync(staging, { recursive: true, force: true }))
    return yield* exit
  })

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
  attempt(file, "write", () => {
    const bytes = new TextEncoder().encode(JSON.stringify(value, null, 2) + "\n")
    const fd = fs.openSync(file, "wx")
    try {
      fs.writeSync(fd, bytes)
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    return { bytes: bytes.byteLength, sha256: createHash("sha256").update(bytes).digest("hex") }
  })

// Renames the complete staging folder into place; an existing folder goes aside first and is
// removed once the new one is there (restored if the rename fails).
const publish = (staging: string, target: string) =>
  attempt(target, "rename into place", () => {
    const aside = fs.existsSync(target) ? path.join(path.dirname(target), `${Owner.temporaryName(`.${path.basename(target)}`)}.old`) : undefined
    if (aside !== undefined) fs.renameSync(target, aside)
    try {
      fs.renameSync(staging, target)
    } catch (cause) {
      if (aside !== undefined) fs.renameSync(aside, target)
      throw cause
    }
    syncDirectory(path.dirname(target))
    if (aside !== undefined) fs.rmSync(aside, { recursive: true, force: true })
  })

const attempt = <A>(file: string, operation: string, f: () => A) =>
  Effect.try({ try: f, catch: (cause) => new IoError.IoError({ file, operation, detail: IoError.describe(cause) }) })

// Makes renames inside `dir` durable; filesystems that cannot fsync a directory are skipped
// (the rename itself is atomic there).
const syncDirectory = (dir: string) => {
  try {
    const fd = fs.openSync(dir, "r")
    try { fs.fsyncSync(fd) } finally { fs.closeSync(fd) }
  } catch { /* not supported everywhere */ }
}
