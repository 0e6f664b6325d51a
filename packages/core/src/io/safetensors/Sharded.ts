/**
 * Sharded safetensors checkpoints, as Hugging Face writes them: `model-00001-of-00003.safetensors`
 * … plus `model.safetensors.index.json` (`{ metadata: { total_size }, weight_map: { tensor: shard } }`).
 * The reader opens each shard lazily by header and checks the index against the shards; the
 * writer streams tensors into shards of at most `shardSize` bytes and publishes the shards and
 * the index together, so a reader never sees part of a checkpoint.
 *
 * @since 0.1.0
 */
import { Effect, Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as AtomicFile from "../AtomicFile.ts"
import * as ByteSource from "../ByteSource.ts"
import * as DirectRead from "../DirectRead.ts"
import { FormatError, InvalidArgument, type ModelIoError, describe, IoError } from "../IoError.ts"
import { ReadCounter } from "../ReadCounter.ts"
import * as Model from "../../model/Model.ts"
import { byteLength, type TensorError, type TensorRef, totalByteLength } from "../../tensor/TensorRef.ts"
import * as Header from "./Header.ts"
import * as Safetensors from "./Safetensors.ts"

const FORMAT = "safetensors index"
/** An index is a name → file map: even 100k tensors take a few MB. */
const MAX_INDEX_BYTES = 64 * 1024 * 1024

/** The index file written beside shards for `target` (`out/model.safetensors` → `out/model.safetensors.index.json`). */
export const indexPath = (target: string): string => `${target}.index.json`

/** True for names like `model.safetensors.index.json`. */
export const isIndex = (file: string): boolean => file.endsWith(".safetensors.index.json")

/** Reads a sharded checkpoint through its index; tensors are read from their shards on demand. */
export const read = (index: string): Effect.Effect<Model.Model, ModelIoError, Scope.Scope> =>
  readIndexed(index, FORMAT, (file) => Effect.flatMap(ByteSource.open(file, "safetensors"), Safetensors.fromSource))

/**
 * Reads any checkpoint sharded with a Hugging Face index (`weight_map`), opening each shard with
 * `openShard` (pytorch_model.bin.index.json uses the same index with PyTorch shards), and checks
 * that the index and the shards agree tensor for tensor.
 */
export const readIndexed = (
  index: string,
  format: string,
  openShard: (file: string) => Effect.Effect<Model.Model, ModelIoError, Scope.Scope>
): Effect.Effect<Model.Model, ModelIoError, Scope.Scope> =>
  Effect.gen(function* () {
    const fail = (detail: string) => new FormatError({ file: index, format, detail })
    const parsed = yield* readIndex(index, format)
    const dir = path.dirname(index)
    const byShard = new Map<string, Array<string>>()
    // Appended in place: copying the list per entry made an index of n tensors in one shard cost n² (100k: 86 s).
    for (const [tensor, shard] of Object.entries(parsed.weightMap)) {
      const names = byShard.get(shard)
      if (names === undefined) byShard.set(shard, [tensor])
      else names.push(tensor)
    }
    const tensors: Array<TensorRef> = []
    const files: Array<string> = []
    let metadata: Record<string, string> = {}
    const shards = [...byShard.keys()].sort()
    for (const shard of shards) {
      const stat = fs.statSync(path.join(dir, shard), { throwIfNoEntry: false })
      if (stat === undefined) return yield* fail(`refers to shard "${shard}", which does not exist (${path.join(dir, shard)})`)
      if (!stat.isFile()) return yield* fail(`refers to shard "${shard}", which is not a file (${path.join(dir, shard)})`)
    }
    for (const shard of shards) {
      const file = path.join(dir, shard)
      const model = yield* openShard(file)
      const listed = new Set(byShard.get(shard))
      for (const name of model.tensors.keys()) {
        if (!listed.has(name)) return yield* fail(`shard "${shard}" holds tensor "${name}", which the index maps ${parsed.weightMap[name] === undefined ? "nowhere" : `to "${parsed.weightMap[name]}"`}`)
      }
      for (const name of listed) if (!model.tensors.has(name)) return yield* fail(`maps tensor "${name}" to shard "${shard}", which does not hold it`)
      if (files.length === 0) metadata = { ...model.metadata }
      for (const t of model.tensors.values()) tensors.push(t) // not push(...): 10⁵ arguments overflow the stack
      files.push(file)
    }
    return Model.make(index, tensors, { ...metadata, ...parsed.metadata }, [index, ...files])
  })

/** A parsed index. @category models */
export interface Index {
  readonly weightMap: Readonly<Record<string, string>>
  readonly metadata: Readonly<Record<string, string>>
}

/** Parses an index file: its weight map (checked to stay inside the folder) and string metadata. */
export const readIndex = (index: string, format = FORMAT): Effect.Effect<Index, ModelIoError> =>
  Effect.gen(function* () {
    const fail = (detail: string) => new FormatError({ file: index, format, detail })
    const size = yield* Effect.try({ try: () => fs.statSync(index).size, catch: (e) => new IoError({ file: index, operation: "open", detail: describe(e) }) })
    if (size > MAX_INDEX_BYTES) return yield* fail(`${size} bytes is too large for an index (limit ${MAX_INDEX_BYTES})`)
    const bytes = yield* Effect.try({ try: () => fs.readFileSync(index), catch: (e) => new IoError({ file: index, operation: "read", detail: describe(e) }) })
    const counter = yield* ReadCounter
    counter.add(index, bytes.byteLength)
    const text = bytes.toString("utf8")
    let raw: unknown
    try {
      raw = JSON.parse(text)
    } catch (e) {
      return yield* fail(`not valid JSON: ${(e as Error).message}`)
    }
    const weightMap = (raw as { weight_map?: unknown } | null)?.weight_map
    if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap)) return yield* fail("has no weight_map object")
    const checked = new Set<string>() // a few shards for 10⁵ tensors: each file name is checked once
    for (const [tensor, shard] of Object.entries(weightMap)) {
      if (typeof shard !== "string") return yield* fail(`weight_map["${tensor}"] is not a file name`)
      if (checked.has(shard)) continue
      // Shards live beside the index: a path that leaves the folder is refused, not followed.
      if (shard === "" || path.isAbsolute(shard) || shard.split(/[\\/]/).includes("..")) return yield* fail(`weight_map["${tensor}"] = "${shard}" points outside the checkpoint's folder`)
      checked.add(shard)
    }
    const metadata: Record<string, string> = {}
    const rawMetadata = (raw as { metadata?: unknown }).metadata
    if (typeof rawMetadata === "object" && rawMetadata !== null) {
      for (const [k, v] of Object.entries(rawMetadata)) if (typeof v === "string") metadata[k] = v
    }
    return { weightMap: weightMap as Record<string, string>, metadata }
  })

/** Options of {@link write}. */
export interface WriteOptions extends Safetensors.WriteOptions {
  /** Largest shard in bytes (a tensor larger than this gets a shard of its own); one file when omitted. */
  readonly shardSize?: number
}

/**
 * Writes `model` to `target`: one file when it fits in `shardSize` (or none is given), else
 * shards named after `target` plus an index. All outputs are published together or not at all.
 */
export const write = (target: string, model: Model.Model, options: WriteOptions = {}): Effect.Effect<ReadonlyArray<Safetensors.Written>, ModelIoError | TensorError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const tensors = [...model.tensors.values()]
      const metadata = { ...model.metadata, ...options.metadata }
      const { shards, index } = yield* layoutChecked(target, model, tensors, metadata, options.shardSize)
      const files: Array<AtomicFile.Committable> = []
      const written: Array<Safetensors.Written> = []
      let first = 0
      // The whole output decides whether it goes around the page cache (each shard is smaller).
      const direct = DirectRead.exceedsCache(totalByteLength(tensors))
      for (const shard of shards) {
        const file = yield* AtomicFile.open(shard.path, { expectedBytes: totalByteLength(shard.tensors), direct })
        written.push(yield* Safetensors.stream(file, shard.tensors, metadata, options, { first, total: tensors.length }))
        files.push(file)
        first += shard.tensors.length
      }
      if (index === undefined) {
        yield* AtomicFile.commitAll(files)
        return written
      }
      const indexFile = yield* AtomicFile.open(index.path)
      yield* indexFile.write(index.bytes)
      yield* AtomicFile.commitAll([...files, indexFile])
      return [...written, { path: index.path, bytes: indexFile.written(), sha256: yield* indexFile.digest, tensors: 0 }]
    })
  )

/** The files a write makes: the safetensors files with their tensors, and the index beside shards. @category models */
export interface Layout {
  readonly shards: ReadonlyArray<{ readonly path: string; readonly tensors: ReadonlyArray<TensorRef> }>
  readonly index?: { readonly path: string; readonly bytes: Uint8Array } | undefined
}

/** What {@link write} would write, from the tensors' headers alone: each file and its exact size. @category models */
export interface PlannedWrite {
  readonly files: ReadonlyArray<{ readonly path: string; readonly bytes: number }>
  /** The writer's own memory: its chunk buffers (`Safetensors.bufferBytes`). */
  readonly workingSetBytes: number
}

/** Plans {@link write}: fails where the write would before writing (a bad shard size, an input overwritten). */
export const planWrite = (target: string, model: Model.Model, options: WriteOptions = {}): Effect.Effect<PlannedWrite, ModelIoError> =>
  Effect.gen(function* () {
    const tensors = [...model.tensors.values()]
    const metadata = { ...model.metadata, ...options.metadata }
    const { shards, index } = yield* layoutChecked(target, model, tensors, metadata, options.shardSize)
    // A file is its header (as the writer serialises it) followed by its tensors' bytes.
    const files = shards.map((s) => ({ path: s.path, bytes: Header.serialize(s.tensors, metadata).header.byteLength + totalByteLength(s.tensors) }))
    return {
      files: index === undefined ? files : [...files, { path: index.path, bytes: index.bytes.byteLength }],
      workingSetBytes: Safetensors.bufferBytes(tensors, options.chunkElements)
    }
  })

// The layout, after the checks a write makes before it opens a file.
const layoutChecked = (target: string, model: Model.Model, tensors: ReadonlyArray<TensorRef>, metadata: Readonly<Record<string, string>>, shardSize: number | undefined) =>
  Effect.gen(function* () {
    const size = shardSize ?? Infinity
    if (!(size > 0)) return yield* new InvalidArgument({ argument: "shard size", value: String(shardSize), detail: "must be a positive number of bytes" })
    const planned = layout(target, tensors, metadata, size)
    yield* AtomicFile.refuseOverwrite([...planned.shards.map((s) => s.path), ...(planned.index === undefined ? [] : [planned.index.path])], model.files)
    return planned
  })

/** The files of a write of `tensors` to `target` in shards of at most `shardSize` bytes (one file when they fit). */
export const layout = (target: string, tensors: ReadonlyArray<TensorRef>, metadata: Readonly<Record<string, string>>, shardSize: number): Layout => {
  const groups = pack(tensors, shardSize)
  if (groups.length === 1) return { shards: [{ path: target, tensors: groups[0]! }] }
  const stem = target.endsWith(".safetensors") ? target.slice(0, -".safetensors".length) : target
  const width = Math.max(5, String(groups.length).length)
  const names = groups.map((_, i) => `${stem}-${String(i + 1).padStart(width, "0")}-of-${String(groups.length).padStart(width, "0")}.safetensors`)
  const weightMap: Record<string, string> = {}
  groups.forEach((group, i) => group.forEach((t) => (weightMap[t.name] = path.basename(names[i]!))))
  const text = `${JSON.stringify({ metadata: { total_size: totalByteLength(tensors), ...metadata }, weight_map: weightMap }, null, 2)}\n`
  return { shards: groups.map((group, i) => ({ path: names[i]!, tensors: group })), index: { path: indexPath(target), bytes: new TextEncoder().encode(text) } }
}

/** Greedy packing in model order, as transformers' `shard_checkpoint` does. */
const pack = (tensors: ReadonlyArray<TensorRef>, shardSize: number): Array<Array<TensorRef>> => {
  const groups: Array<Array<TensorRef>> = [[]]
  let size = 0
  for (const t of tensors) {
    const bytes = byteLength(t)
    if (size > 0 && size + bytes > shardSize) {
      groups.push([])
      size = 0
    }
    groups[groups.length - 1]!.push(t)
    size += bytes
  }
  return groups
}
