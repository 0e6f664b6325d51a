/**
 * PyTorch checkpoints: the zip format `torch.save` writes since 1.6, and the legacy format
 * before it (`_use_new_zipfile_serialization=False`). `data.pkl` is read through the allowlist
 * unpickler; storages stay in the file and are read by byte range when a tensor is read, so
 * only the storages a stage needs are ever touched.
 *
 * @since 0.1.0
 */
import { Effect, Scope } from "effect"
import * as ByteSource from "../ByteSource.ts"
import { ExpansionLimit, FormatError, InvalidArgument, type ModelIoError, UnsafePickle } from "../IoError.ts"
import * as Pickle from "../pickle/Pickle.ts"
import * as Zip from "../zip/Zip.ts"
import * as Model from "../../model/Model.ts"
import { byteSize } from "../../tensor/DType.ts"
import { findGlobal, persistentLoader, type StorageRef } from "./Globals.ts"
import * as Legacy from "./Legacy.ts"
import * as StateDict from "./StateDict.ts"
import * as Strided from "./Strided.ts"

/** Format name used in errors. */
export const FORMAT = "pytorch"

/** Options of {@link read}. */
export interface ReadOptions extends Strided.ExpansionOptions {
  /** Where the state dict is: a top-level key or a dotted path (`"model"`, `"ema.state_dict"`). */
  readonly key?: string
}

/** A pickle above this size is not a state dict (a 100k-tensor model's is a few MB). */
export const MAX_PICKLE_BYTES = 1024 * 1024 * 1024

/** Reads the checkpoint at `path` lazily: tensors are read while the scope is open. */
export const read = (path: string, options: ReadOptions = {}): Effect.Effect<Model.Model, ModelIoError, Scope.Scope> =>
  Effect.flatMap(ByteSource.open(path, FORMAT), (source) => fromSource(source, options))

/** Reads a checkpoint, zip or legacy, from an open byte source. */
export const fromSource = (source: ByteSource.ByteSource, options: ReadOptions = {}): Effect.Effect<Model.Model, ModelIoError> =>
  Effect.gen(function* () {
    const fail = (detail: string) => new FormatError({ file: source.path, format: FORMAT, detail })
    if (source.size < 4) return yield* fail(`file is ${source.size} bytes: not a PyTorch checkpoint`)
    const head = yield* source.read(0, Math.min(source.size, 512))
    if (head[0] === 0x50 && head[1] === 0x4b) return yield* fromZip(source, options)
    if (Legacy.isLegacy(head)) return yield* Legacy.fromSource(source, (root, storages) => toModel(source.path, root, storages, options))
    if (head.byteLength >= 262 && new TextDecoder().decode(head.subarray(257, 262)) === "ustar") {
      return yield* fail("this is the tar-based format of PyTorch before 0.4, which is not supported: load it with torch and save it again")
    }
    return yield* fail("neither a zip checkpoint (torch.save ≥ 1.6) nor a legacy pickle checkpoint")
  })

const fromZip = (source: ByteSource.ByteSource, options: ReadOptions) =>
  Effect.gen(function* () {
    const fail = (detail: string) => new FormatError({ file: source.path, format: FORMAT, detail })
    const archive = yield* Zip.open(source, FORMAT)
    const pickles = [...archive.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n) || n === "data.pkl")
    if (pickles.length === 0) {
      return yield* fail(`zip archive without data.pkl (entries: ${[...archive.entries.keys()].slice(0, 8).join(", ") || "none"}): not a torch.save checkpoint`)
    }
    if (pickles.length > 1) return yield* fail(`zip archive with several data.pkl (${pickles.join(", ")})`)
    const prefix = pickles[0]!.slice(0, -"data.pkl".length)
    if (archive.entries.has(`${prefix}constants.pkl`)) {
      return yield* fail("this is a TorchScript archive (torch.jit.save), not a state dict: save model.state_dict() with torch.save")
    }
    const byteorder = archive.entries.get(`${prefix}byteorder`)
    if (byteorder !== undefined) {
      const order = new TextDecoder().decode(yield* archive.readWhole(byteorder, 16)).trim()
      if (order !== "little") return yield* fail(`storages are ${order}-endian; only little-endian checkpoints are supported`)
    }
    const pickle = yield* archive.readWhole(archive.entries.get(pickles[0]!)!, MAX_PICKLE_BYTES)
    const root = yield* unpickle(source.path, pickle)
    const storages: Strided.Storages = {
      file: source.path,
      format: FORMAT,
      get: (ref) => {
        const entry = archive.entries.get(`${prefix}data/${ref.key}`)
        if (entry === undefined) return `storage "${ref.key}" has no entry ${prefix}data/${ref.key} in the archive`
        if (entry.method !== 0) return `storage entry ${entry.name} is compressed; torch writes storages uncompressed`
        if (entry.size !== storageBytes(ref)) return `storage entry ${entry.name} has ${entry.size} bytes but ${ref.numel} × ${ref.dtype} needs ${storageBytes(ref)}`
        return { byteLength: entry.size, read: (offset, length) => archive.readRange(entry, offset, length) }
      }
    }
    return yield* toModel(source.path, root.value, storages, options)
  })

/** Unpickles `bytes` with torch's allowlist, mapping refusals to typed errors. */
export const unpickle = (file: string, bytes: Uint8Array, start = 0): Effect.Effect<{ readonly value: unknown; readonly end: number }, FormatError | UnsafePickle> => {
  const outcome = Pickle.load(bytes, { findGlobal, persistentLoad: persistentLoader().load, start })
  switch (outcome._tag) {
    case "Loaded": return Effect.succeed(outcome)
    case "Unsafe": return Effect.fail(new UnsafePickle({ file, global: outcome.global }))
    case "Invalid": return Effect.fail(new FormatError({ file, format: FORMAT, detail: `data.pkl: ${outcome.detail}` }))
  }
}

/** The model of an unpickled checkpoint whose storages are given. */
const toModel = (file: string, root: unknown, storages: Strided.Storages, options: ReadOptions): Effect.Effect<Model.Model, FormatError | InvalidArgument | ExpansionLimit> => {
  const selected = StateDict.select(root, options.key)
  if ("kind" in selected) {
    return Effect.fail(
      selected.kind === "key"
        ? new InvalidArgument({ argument: "key", value: JSON.stringify(options.key), detail: `${file}: ${selected.detail}` })
        : new FormatError({ file, format: FORMAT, detail: selected.detail })
    )
  }
  const tensors = Strided.tensors(selected, storages, options)
  if (!Array.isArray(tensors)) return Effect.fail(tensors)
  return Effect.succeed(Model.make(file, tensors, {}, [file]))
}

/** Bytes a storage reference needs. */
export const storageBytes = (ref: StorageRef): number => ref.numel * byteSize[ref.dtype]
