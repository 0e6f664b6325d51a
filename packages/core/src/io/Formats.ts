/**
 * The one entry point to model files, used by every stage and the CLI: `readModel` accepts a
 * safetensors file, a sharded index, a Hugging Face snapshot folder, a PyTorch checkpoint
 * (.pt/.pth/.bin/.ckpt, zip or legacy, single or sharded) or a TF.js `model.json`, decided by
 * the file's content rather than trusted to its extension; `writeModel` writes safetensors
 * (sharded when asked) or TF.js; `inspect` summarises a model without reading its tensors.
 * Relative paths are resolved against the working directory: resolving them against a
 * pipeline file is the caller's job.
 *
 * @since 0.1.0
 */
import { Effect, Result, Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as ByteSource from "./ByteSource.ts"
import { describe, FormatError, InvalidArgument, IoError, type ModelIoError } from "./IoError.ts"
import * as Safetensors from "./safetensors/Safetensors.ts"
import * as Sharded from "./safetensors/Sharded.ts"
import * as Tfjs from "./tfjs/Tfjs.ts"
import * as Legacy from "./torch/Legacy.ts"
import * as Strided from "./torch/Strided.ts"
import * as Torch from "./torch/Torch.ts"
import * as Model from "../model/Model.ts"
import type { DType } from "../tensor/DType.ts"
import { byteLength, type TensorError } from "../tensor/TensorRef.ts"

export { parseByteSize } from "./ByteSize.ts"

/** The formats `readModel` recognises. @category models */
export const FormatNames = ["safetensors", "safetensors-sharded", "pytorch", "pytorch-sharded", "tfjs"] as const
/** @category models */
export type FormatName = (typeof FormatNames)[number]

/** Where a model path leads: the format and the file to open. @category models */
export interface Detected {
  readonly format: FormatName
  readonly file: string
}

/** Options of {@link readModel}. */
export interface ReadOptions {
  /** PyTorch only: where the state dict is inside the checkpoint (`"model"`, `"ema.state_dict"`). */
  readonly key?: string
  /**
   * Largest ratio of a tensor's logical bytes to the bytes its storage holds in the file (PyTorch
   * views with zero or overlapping strides; safetensors and TF.js store every byte, so theirs is
   * 1). Default: `CRUCIBLE_MAX_TENSOR_EXPANSION` when set, else 16 (`Torch.DEFAULT_MAX_EXPANSION`);
   * `Infinity` turns the check off.
   */
  readonly maxExpansion?: number
}

/** The environment variable that raises (or lowers) the expansion limit when no option is given. */
export const MAX_EXPANSION_ENV = "CRUCIBLE_MAX_TENSOR_EXPANSION"

/** The expansion limit in effect: the option, else the environment variable (read at call time), else the default. */
export const resolveMaxExpansion = (option: number | undefined, env: Readonly<Record<string, string | undefined>> = process.env): Result.Result<number, InvalidArgument> => {
  const raw = option ?? env[MAX_EXPANSION_ENV]
  if (raw === undefined || raw === "") return Result.succeed(Strided.DEFAULT_MAX_EXPANSION)
  const value = typeof raw === "number" ? raw : Number(raw.trim())
  return value >= 1 ? Result.succeed(value) : Result.fail(new InvalidArgument({
    argument: option === undefined ? MAX_EXPANSION_ENV : "maxExpansion",
    value: JSON.stringify(raw),
    detail: "must be a number ≥ 1 (the factor a tensor may exceed its stored bytes by), or Infinity to turn the check off"
  }))
}

/** Files a Hugging Face snapshot folder may hold, in order of preference. */
const FOLDER_FILES: ReadonlyArray<readonly [string, FormatName]> = [
  ["model.safetensors.index.json", "safetensors-sharded"],
  ["model.safetensors", "safetensors"],
  ["pytorch_model.bin.index.json", "pytorch-sharded"],
  ["pytorch_model.bin", "pytorch"],
  ["model.json", "tfjs"]
]

const TORCH_EXTENSIONS = [".pt", ".pth", ".bin", ".ckpt", ".pkl"]

/** Decides the format of a model path from the folder's contents or the file's first bytes. */
export const detect: (target: string) => Effect.Effect<Detected, ModelIoError> = Effect.fn("Formats.detect")(
  function* (target: string) {
    const stat = yield* Effect.try({ try: () => fs.statSync(target), catch: (e) => new IoError({ file: target, operation: "open", detail: describe(e) }) })
    if (stat.isDirectory()) return yield* detectFolder(target)
    const base = path.basename(target)
    if (base.endsWith(".index.json")) {
      const index = yield* Sharded.readIndex(target, "index")
      const shards = Object.values(index.weightMap)
      return { format: shards.length > 0 && shards.every((s) => !s.endsWith(".safetensors")) ? "pytorch-sharded" : "safetensors-sharded", file: target }
    }
    if (base.endsWith(".json")) return { format: "tfjs", file: target }
    const head = yield* Effect.scoped(Effect.flatMap(ByteSource.open(target), (s) => s.read(0, Math.min(s.size, 16))))
    if (head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return { format: "pytorch", file: target }
    if (Legacy.isLegacy(head)) return { format: "pytorch", file: target }
    if (head.byteLength >= 9 && head[8] === 0x7b) return { format: "safetensors", file: target }
    if (base.endsWith(".safetensors")) return { format: "safetensors", file: target } // its reader says what is wrong
    if (TORCH_EXTENSIONS.some((e) => base.endsWith(e))) return { format: "pytorch", file: target }
    return yield* new FormatError({ file: target, format: "model", detail: "not a safetensors file, a PyTorch checkpoint or a TF.js model.json (its first bytes match none of them)" })
  }
)

const detectFolder = (dir: string): Effect.Effect<Detected, FormatError> =>
  Effect.gen(function* () {
    for (const [name, format] of FOLDER_FILES) if (fs.existsSync(path.join(dir, name))) return { format, file: path.join(dir, name) }
    const entries = fs.readdirSync(dir).sort()
    // Otherwise exactly one candidate of a kind: an index, a safetensors file, a checkpoint.
    const kinds: ReadonlyArray<readonly [(e: string) => boolean, FormatName]> = [
      [(e) => e.endsWith(".safetensors.index.json"), "safetensors-sharded"],
      [(e) => e.endsWith(".safetensors"), "safetensors"],
      [(e) => TORCH_EXTENSIONS.some((x) => e.endsWith(x)), "pytorch"]
    ]
    for (const [matches, format] of kinds) {
      const found = entries.filter(matches)
      if (found.length === 1) return { format, file: path.join(dir, found[0]!) }
      if (found.length > 1) break
    }
    const listing = entries.length === 0 ? "it is empty" : `it holds ${entries.slice(0, 10).join(", ")}${entries.length > 10 ? ", …" : ""}`
    return yield* new FormatError({
      file: dir,
      format: "model folder",
      detail: `no model found (looked for ${FOLDER_FILES.map(([n]) => n).join(", ")}, or a single *.safetensors.index.json, *.safetensors or checkpoint); ${listing}`
    })
  })

/** Reads the model at `target` lazily: tensors are read while the scope is open. @category constructors */
export const readModel: (target: string, options?: ReadOptions) => Effect.Effect<Model.Model, ModelIoError, Scope.Scope> = Effect.fn("Formats.readModel")(
  function* (target: string, options: ReadOptions = {}) {
    const { format, file } = yield* detect(target)
    if (options.key !== undefined && format !== "pytorch" && format !== "pytorch-sharded") {
      return yield* new InvalidArgument({ argument: "key", value: JSON.stringify(options.key), detail: `${file} is ${format}, which holds one state dict; key selects one inside a PyTorch checkpoint` })
    }
    const maxExpansion = yield* Effect.fromResult(resolveMaxExpansion(options.maxExpansion))
    const torchOptions = { maxExpansion, ...(options.key === undefined ? {} : { key: options.key }) }
    switch (format) {
      case "safetensors": return yield* Safetensors.read(file)
      case "safetensors-sharded": return yield* Sharded.read(file)
      case "pytorch": return yield* Torch.read(file, torchOptions)
      case "pytorch-sharded": return yield* Sharded.readIndexed(file, "pytorch index", (shard) => Torch.read(shard, torchOptions))
      case "tfjs": return yield* Tfjs.read(file)
    }
  }
)

/** Options of {@link writeModel}. */
export interface WriteOptions {
  /** Default: `tfjs` for a path ending in `.json`, else `safetensors`. */
  readonly format?: "safetensors" | "tfjs"
  /** Largest shard in bytes (see `parseByteSize`); safetensors: one file when omitted; tfjs: 4 MiB. */
  readonly shardSize?: number
  /** Metadata merged over the model's own and the provenance written by default. */
  readonly metadata?: Readonly<Record<string, string>>
  /** Called after each tensor is written (safetensors), for progress reports. */
  readonly onTensorWritten?: Safetensors.WriteOptions["onTensorWritten"]
}

/** One file a write produced. @category models */
export interface WrittenFile {
  readonly path: string
  readonly bytes: number
  readonly sha256: string
}

/**
 * Writes `model` to `target`, streaming and atomically (every output file appears, or none).
 * safetensors output records provenance in `__metadata__`: `format: pt` (which transformers
 * requires) unless the model says otherwise, and `crucible.source`, the model's origin.
 */
export const writeModel: (target: string, model: Model.Model, options?: WriteOptions) => Effect.Effect<{ readonly files: ReadonlyArray<WrittenFile> }, ModelIoError | TensorError> = Effect.fn("Formats.writeModel")(
  function* (target: string, model: Model.Model, options: WriteOptions = {}) {
    const write = writerOptions(target, model, options)
    const written = write.format === "tfjs"
      ? yield* Tfjs.write(target, model, write.tfjs)
      : yield* Sharded.write(target, write.safetensors.model, {
          ...write.safetensors.options,
          ...(options.onTensorWritten === undefined ? {} : { onTensorWritten: options.onTensorWritten })
        })
    return { files: written.map(({ path, bytes, sha256 }) => ({ path, bytes, sha256 })) }
  }
)

/** What {@link writeModel} would write: every file with its exact size, and the writer's own memory. @category models */
export interface PlannedWrite {
  readonly files: ReadonlyArray<{ readonly path: string; readonly bytes: number }>
  readonly workingSetBytes: number
}

/**
 * Plans {@link writeModel} from the tensors' headers alone (no tensor is read, nothing is written):
 * the files (each shard and the index; model.json and its shards) and their sizes, failing where
 * the write would fail before it starts.
 */
export const planWrite = (target: string, model: Model.Model, options: Omit<WriteOptions, "onTensorWritten"> = {}): Effect.Effect<PlannedWrite, ModelIoError> => {
  const write = writerOptions(target, model, options)
  return write.format === "tfjs" ? Tfjs.planWrite(target, model, write.tfjs) : Sharded.planWrite(target, write.safetensors.model, write.safetensors.options)
}

// The one translation of writeModel's options for each writer, shared by the write and its plan.
const writerOptions = (target: string, model: Model.Model, options: WriteOptions) => {
  const format = options.format ?? (target.endsWith(".json") ? "tfjs" : "safetensors")
  const shardSize = options.shardSize === undefined ? {} : { shardSize: options.shardSize }
  return {
    format,
    tfjs: { ...shardSize, metadata: { "crucible.source": model.source, ...options.metadata } },
    safetensors: {
      model: Model.make(model.source, model.tensors.values(), {}, model.files),
      options: { ...shardSize, metadata: { format: "pt", ...model.metadata, "crucible.source": model.source, ...options.metadata } }
    }
  } as const
}

/** A plain summary of a model file, for `crucible inspect`. @category models */
export interface Inspection {
  readonly path: string
  readonly format: FormatName
  readonly files: ReadonlyArray<string>
  readonly tensors: ReadonlyArray<{ readonly name: string; readonly dtype: DType; readonly shape: ReadonlyArray<number>; readonly bytes: number }>
  readonly metadata: Readonly<Record<string, string>>
  readonly totalBytes: number
}

/** Summarises the model at `target` from its headers alone (no tensor is read). */
export const inspect: (target: string, options?: ReadOptions) => Effect.Effect<Inspection, ModelIoError> = Effect.fn("Formats.inspect")(
  function* (target: string, options: ReadOptions = {}) {
    const { format } = yield* detect(target)
    const model = yield* readModel(target, options)
    const tensors = [...model.tensors.values()].map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: byteLength(t) }))
    return { path: target, format, files: model.files, tensors, metadata: model.metadata, totalBytes: Model.totalBytes(model) } satisfies Inspection
  },
  Effect.scoped
)
