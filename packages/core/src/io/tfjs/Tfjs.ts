/**
 * TF.js models: `model.json` (topology + weights manifest) and its binary weight shards. Weights
 * keep TF.js names and layouts (a dense kernel is [in, out]); {@link ./Layout.ts} maps them to
 * PyTorch's when the caller asks. The manifest's weights are laid out back to back across the
 * group's shards, which split the bytes at fixed sizes — a weight may straddle two files.
 * Quantized weights (uint8/uint16 affine, float16) are read as tensorflowjs_converter defines them.
 *
 * The topology and the other model.json fields travel in the model's metadata (`tfjs.*`), so a
 * model read here and written back is the same model.json.
 *
 * @since 0.1.0
 */
import { Effect, Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as AtomicFile from "../AtomicFile.ts"
import * as ByteSource from "../ByteSource.ts"
import { describe, FormatError, InvalidArgument, IoError, type ModelIoError } from "../IoError.ts"
import { ReadCounter } from "../ReadCounter.ts"
import * as Model from "../../model/Model.ts"
import { byteSize, type DType, fromNumbers, toFloat64 } from "../../tensor/DType.ts"
import type * as Lineage from "../../tensor/Lineage.ts"
import { numel, type TensorBytes, type TensorError, type TensorRef } from "../../tensor/TensorRef.ts"

const FORMAT = "tfjs"
const MAX_MODEL_JSON_BYTES = 256 * 1024 * 1024
/** tfjs-converter's default shard size. */
export const DEFAULT_SHARD_BYTES = 4 * 1024 * 1024
/** model.json fields carried in metadata, as `tfjs.<field>` (objects as JSON text). */
const CARRIED = ["format", "generatedBy", "convertedBy", "modelTopology", "trainingConfig", "signature", "modelInitializer", "initializerSignature"] as const

interface WeightSpec {
  readonly name: string
  readonly shape: ReadonlyArray<number>
  readonly dtype: string
  readonly quantization?: { readonly dtype: string; readonly scale?: number; readonly min?: number }
}

/** Reads `model.json` and its shards; weights are read by byte range while the scope is open. */
export const read = (modelJson: string): Effect.Effect<Model.Model, ModelIoError, Scope.Scope> =>
  Effect.gen(function* () {
    const fail = (detail: string, tensor?: string) => new FormatError({ file: modelJson, format: FORMAT, detail, ...(tensor === undefined ? {} : { tensor }) })
    const json = yield* readJson(modelJson)
    const manifest = (json as { weightsManifest?: unknown }).weightsManifest
    if (!Array.isArray(manifest)) return yield* fail("has no weightsManifest list")
    const tensors: Array<TensorRef> = []
    const files: Array<string> = [modelJson]
    const seen = new Set<string>()
    for (const [g, group] of manifest.entries()) {
      const { paths, weights } = (group ?? {}) as { paths?: unknown; weights?: unknown }
      if (!Array.isArray(paths) || !paths.every((p) => typeof p === "string") || !Array.isArray(weights)) return yield* fail(`weightsManifest[${g}] needs "paths" and "weights" lists`)
      const shards: Array<ByteSource.ByteSource> = []
      for (const p of paths as Array<string>) {
        if (path.isAbsolute(p) || p.split(/[\\/]/).includes("..")) return yield* fail(`shard path "${p}" points outside the model's folder`)
        const file = path.join(path.dirname(modelJson), p)
        if (!fs.existsSync(file)) return yield* fail(`refers to weight shard "${p}", which does not exist (${file})`)
        shards.push(yield* ByteSource.open(file, FORMAT))
        files.push(file)
      }
      const available = shards.reduce((n, s) => n + s.size, 0)
      let offset = 0
      for (const raw of weights as Array<unknown>) {
        const spec = parseSpec(raw)
        if (typeof spec === "string") return yield* fail(spec)
        if (seen.has(spec.name)) return yield* fail("appears twice in the manifest", spec.name)
        seen.add(spec.name)
        const layout = storedLayout(spec)
        if (typeof layout === "string") return yield* fail(layout, spec.name)
        const bytes = numel(spec.shape) * layout.stored
        tensors.push({ ...weight(spec, layout, concat(shards), offset, fail), lineage: storedIn(shards, offset, bytes) })
        offset += bytes
      }
      if (offset !== available) return yield* fail(`weight group ${g + 1}: its shards hold ${available} bytes but its weights need ${offset}${offset > available ? " (a shard is truncated or missing?)" : ""}`)
    }
    return Model.make(modelJson, tensors, carriedMetadata(json), files)
  })

const readJson = (file: string): Effect.Effect<unknown, ModelIoError> =>
  Effect.gen(function* () {
    const fail = (detail: string) => new FormatError({ file, format: FORMAT, detail })
    const size = yield* Effect.try({ try: () => fs.statSync(file).size, catch: (e) => new IoError({ file, operation: "open", detail: describe(e) }) })
    if (size > MAX_MODEL_JSON_BYTES) return yield* fail(`${size} bytes is too large for a model.json (limit ${MAX_MODEL_JSON_BYTES})`)
    const bytes = yield* Effect.try({ try: () => fs.readFileSync(file), catch: (e) => new IoError({ file, operation: "read", detail: describe(e) }) })
    const counter = yield* ReadCounter
    counter.add(file, bytes.byteLength)
    const text = bytes.toString("utf8")
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (e) {
      return yield* fail(`not valid JSON: ${(e as Error).message}`)
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) return yield* fail("is not a JSON object")
    return json
  })

const parseSpec = (raw: unknown): WeightSpec | string => {
  const { name, shape, dtype, quantization } = (raw ?? {}) as Record<string, unknown>
  if (typeof name !== "string") return "a weight without a name"
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0) || !Number.isSafeInteger(numel(shape))) return `weight "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`
  if (typeof dtype !== "string") return `weight "${name}": no dtype`
  if (quantization !== undefined && (typeof quantization !== "object" || quantization === null || typeof (quantization as { dtype?: unknown }).dtype !== "string")) return `weight "${name}": malformed quantization`
  return { name, shape, dtype, ...(quantization === undefined ? {} : { quantization: quantization as WeightSpec["quantization"] & object }) }
}

/** How a weight is stored (bytes per element) and what dtype it reads as. */
interface Layout {
  readonly stored: number
  readonly dtype: DType
  /** Affine dequantisation `q * scale + min` of uint8/uint16 codes; rounded for int32 weights. */
  readonly affine?: { readonly codes: 1 | 2; readonly scale: number; readonly min: number; readonly round: boolean }
}

const storedLayout = (spec: WeightSpec): Layout | string => {
  const q = spec.quantization
  if (q === undefined) {
    switch (spec.dtype) {
      case "float32": return { stored: 4, dtype: "F32" }
      case "int32": return { stored: 4, dtype: "I32" }
      case "bool": return { stored: 1, dtype: "BOOL" }
      default: return `${spec.dtype} weights are not supported`
    }
  }
  if (q.dtype === "float16" && spec.dtype === "float32") return { stored: 2, dtype: "F16" }
  if ((q.dtype === "uint8" || q.dtype === "uint16") && (spec.dtype === "float32" || spec.dtype === "int32")) {
    if (!Number.isFinite(q.scale) || !Number.isFinite(q.min)) return `${q.dtype} quantization needs a finite scale and min`
    const round = spec.dtype === "int32"
    return { stored: q.dtype === "uint8" ? 1 : 2, dtype: round ? "I32" : "F32", affine: { codes: q.dtype === "uint8" ? 1 : 2, scale: q.scale!, min: q.min!, round } }
  }
  return `${spec.dtype} weights quantized as ${q.dtype} are not supported`
}

/** The shards of a group as one byte range: a read may span files. */
const concat = (shards: ReadonlyArray<ByteSource.ByteSource>) => (offset: number, length: number): Effect.Effect<TensorBytes, ModelIoError> =>
  Effect.gen(function* () {
    const out = new Uint8Array(length)
    let start = 0
    let filled = 0
    for (const shard of shards) {
      const end = start + shard.size
      if (offset + filled < end && filled < length) {
        const from = offset + filled - start
        const n = Math.min(length - filled, shard.size - from)
        out.set(yield* shard.read(from, n), filled)
        filled += n
      }
      start = end
    }
    return out
  })

/** The bytes `[offset, offset + length)` of a group occupy in each of its shards. */
const storedIn = (shards: ReadonlyArray<ByteSource.ByteSource>, offset: number, length: number): Lineage.Stored => {
  const reads: Array<{ readonly file: string; readonly bytes: number }> = []
  let start = 0
  for (const shard of shards) {
    const bytes = Math.min(offset + length, start + shard.size) - Math.max(offset, start)
    if (bytes > 0) reads.push({ file: shard.path, bytes })
    start += shard.size
  }
  return { _tag: "Stored", reads }
}

const weight = (spec: WeightSpec, layout: Layout, bytesAt: ReturnType<typeof concat>, offset: number, fail: (detail: string, tensor?: string) => FormatError): TensorRef => {
  const count = numel(spec.shape)
  return {
    name: spec.name,
    dtype: layout.dtype,
    shape: spec.shape,
    read: (range) => {
      const start = range?.start ?? 0
      const end = range?.end ?? count
      if (!(start >= 0 && start <= end && end <= count)) return Effect.fail(fail(`element range [${start}, ${end}) is outside its ${count} elements`, spec.name))
      const raw = bytesAt(offset + start * layout.stored, (end - start) * layout.stored)
      const affine = layout.affine
      if (affine === undefined) return raw
      return Effect.map(raw, (codes) => {
        const dv = new DataView(codes.buffer, codes.byteOffset, codes.byteLength)
        const values = new Float64Array(end - start)
        for (let i = 0; i < values.length; i++) {
          const v = (affine.codes === 1 ? dv.getUint8(i) : dv.getUint16(2 * i, true)) * affine.scale + affine.min
          values[i] = affine.round ? Math.round(v) : v
        }
        return fromNumbers(affine.round ? values : Float32Array.from(values), layout.dtype === "I32" ? "I32" : "F32")
      })
    }
  }
}

const carriedMetadata = (json: unknown): Record<string, string> => {
  const out: Record<string, string> = {}
  const fields = json as Record<string, unknown>
  for (const field of CARRIED) if (fields[field] !== undefined) out[`tfjs.${field}`] = JSON.stringify(fields[field])
  const user = fields.userDefinedMetadata as Record<string, unknown> | undefined
  const crucible = user?.crucible
  if (typeof crucible === "object" && crucible !== null) for (const [k, v] of Object.entries(crucible)) if (typeof v === "string") out[k] = v
  return out
}

/** Options of {@link write}. */
export interface WriteOptions {
  /** Largest weight shard in bytes (default 4 MiB, as tfjs-converter). */
  readonly shardSize?: number
  /** Metadata merged over the model's: `tfjs.*` keys become model.json fields, others go to userDefinedMetadata.crucible. */
  readonly metadata?: Readonly<Record<string, string>>
}

/** What a write produced: model.json first, then the shards. */
export interface Written {
  readonly path: string
  readonly bytes: number
  readonly sha256: string
}

/** How a tensor is stored in TF.js. */
interface Output {
  readonly dtype: "float32" | "int32" | "bool"
  readonly quantization?: { readonly dtype: "float16" }
  /** Stored bytes per element. */
  readonly size: number
}

/** TF.js has float32, int32 and bool weights (and float16 as a quantization of float32). */
const outputOf = (t: TensorRef): Output => {
  switch (t.dtype) {
    case "F16": return { dtype: "float32", quantization: { dtype: "float16" }, size: 2 }
    case "F32": case "F64": case "BF16": case "F8_E4M3": case "F8_E5M2": return { dtype: "float32", size: 4 }
    case "I64": case "I32": case "I16": case "I8": case "U8": return { dtype: "int32", size: 4 }
    case "BOOL": return { dtype: "bool", size: 1 }
  }
}

/**
 * Writes `model` as `target` (a `model.json` path, or a folder to hold one) plus
 * `group1-shard{i}of{n}.bin` files, streaming tensor by tensor; all files appear together.
 * F16 stays float16 (tfjs's float16 quantization, exact); other floats become float32 (F64
 * rounds); integers become int32, and a value outside int32 is an error naming the tensor.
 */
export const write = (target: string, model: Model.Model, options: WriteOptions = {}): Effect.Effect<ReadonlyArray<Written>, ModelIoError | TensorError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const { modelJson, shardSize, tensors, outputs, names, dir, shardBytes } = yield* layoutChecked(target, model, options)
      const shards: Array<AtomicFile.Committable> = []
      for (const [i, name] of names.entries()) shards.push(yield* AtomicFile.open(path.join(dir, name), { expectedBytes: shardBytes[i]! }))
      let position = 0
      const emit = (bytes: Uint8Array) =>
        Effect.gen(function* () {
          let at = 0
          while (at < bytes.byteLength) {
            const shard = Math.floor(position / shardSize)
            const n = Math.min(bytes.byteLength - at, (shard + 1) * shardSize - position)
            yield* shards[shard]!.write(bytes.subarray(at, at + n))
            at += n
            position += n
          }
        })
      for (const [i, t] of tensors.entries()) yield* emit(yield* encode(t, outputs[i]!, modelJson))
      const metadata = { ...model.metadata, ...options.metadata }
      const json = modelJsonFor(metadata, names, tensors, outputs)
      const jsonFile = yield* AtomicFile.open(modelJson)
      yield* jsonFile.write(new TextEncoder().encode(JSON.stringify(json)))
      yield* AtomicFile.commitAll([jsonFile, ...shards])
      return yield* Effect.forEach([jsonFile, ...shards], (f) => Effect.map(f.digest, (sha256) => ({ path: f.target, bytes: f.written(), sha256 })))
    })
  )

// The files of a write, after the checks it makes before it opens one.
const layoutChecked = (target: string, model: Model.Model, options: WriteOptions) =>
  Effect.gen(function* () {
    const modelJson = target.endsWith(".json") ? target : path.join(target, "model.json")
    const shardSize = options.shardSize ?? DEFAULT_SHARD_BYTES
    if (!(Number.isSafeInteger(shardSize) && shardSize > 0)) return yield* new InvalidArgument({ argument: "shard size", value: String(options.shardSize), detail: "must be a positive whole number of bytes" })
    const tensors = [...model.tensors.values()]
    const outputs = tensors.map(outputOf)
    const total = tensors.reduce((n, t, i) => n + numel(t.shape) * outputs[i]!.size, 0)
    const count = Math.max(1, Math.ceil(total / shardSize))
    const names = Array.from({ length: count }, (_, i) => `group1-shard${i + 1}of${count}.bin`)
    const dir = path.dirname(modelJson)
    yield* AtomicFile.refuseOverwrite([modelJson, ...names.map((n) => path.join(dir, n))], model.files)
    return { modelJson, shardSize, tensors, outputs, names, dir, shardBytes: names.map((_, i) => Math.min(shardSize, total - i * shardSize)) }
  })

/** What {@link write} would write, from the headers alone: model.json and each shard with their exact sizes. */
export const planWrite = (target: string, model: Model.Model, options: WriteOptions = {}): Effect.Effect<{
  readonly files: ReadonlyArray<{ readonly path: string; readonly bytes: number }>
  /** The writer's own memory: the largest tensor read whole, and its encoding. */
  readonly workingSetBytes: number
}, ModelIoError> =>
  Effect.map(layoutChecked(target, model, options), ({ modelJson, tensors, outputs, names, dir, shardBytes }) => ({
    files: [
      { path: modelJson, bytes: new TextEncoder().encode(JSON.stringify(modelJsonFor({ ...model.metadata, ...options.metadata }, names, tensors, outputs))).byteLength },
      ...names.map((name, i) => ({ path: path.join(dir, name), bytes: shardBytes[i]! }))
    ],
    workingSetBytes: tensors.reduce((m, t, i) => Math.max(m, numel(t.shape) * (byteSize[t.dtype] + outputs[i]!.size)), 0)
  }))

const INT32 = [-(2 ** 31), 2 ** 31 - 1] as const

/** A tensor's bytes as TF.js stores them (whole tensors: TF.js weights are small enough). */
const encode = (t: TensorRef, out: Output, file: string): Effect.Effect<Uint8Array, ModelIoError | TensorError> =>
  Effect.gen(function* () {
    const bytes = yield* t.read()
    if (bytes.byteLength !== numel(t.shape) * byteSize[t.dtype]) return yield* new FormatError({ file, format: FORMAT, tensor: t.name, detail: `source produced ${bytes.byteLength} bytes where ${numel(t.shape) * byteSize[t.dtype]} were expected` })
    if (t.dtype === "F16" || t.dtype === "F32" || t.dtype === "I32" || t.dtype === "BOOL") return bytes
    const values = toFloat64(bytes, t.dtype)
    if (out.dtype === "int32") {
      for (const v of values) {
        if (v < INT32[0] || v > INT32[1]) return yield* new FormatError({ file, format: FORMAT, tensor: t.name, detail: `value ${v} does not fit in TF.js's int32` })
      }
      return fromNumbers(values, "I32")
    }
    return fromNumbers(values, "F32")
  })

const modelJsonFor = (
  metadata: Readonly<Record<string, string>>,
  paths: ReadonlyArray<string>,
  tensors: ReadonlyArray<TensorRef>,
  outputs: ReadonlyArray<Output>
) => {
  const parse = (key: string): unknown => {
    try { return JSON.parse(metadata[key]!) } catch { return metadata[key] }
  }
  const json: Record<string, unknown> = { modelTopology: metadata["tfjs.modelTopology"] === undefined ? null : parse("tfjs.modelTopology") }
  for (const field of CARRIED) if (field !== "modelTopology" && metadata[`tfjs.${field}`] !== undefined) json[field] = parse(`tfjs.${field}`)
  json.weightsManifest = [{
    paths: paths.map((p) => `./${p}`),
    weights: tensors.map((t, i) => ({ name: t.name, shape: t.shape, dtype: outputs[i]!.dtype, ...(outputs[i]!.quantization ? { quantization: outputs[i]!.quantization } : {}) }))
  }]
  const own = Object.entries(metadata).filter(([k]) => !k.startsWith("tfjs."))
  if (own.length > 0) json.userDefinedMetadata = { crucible: Object.fromEntries(own) }
  return json
}

/** Bytes per element of each dtype in TF.js storage, exported for planners. */
export const storedBytes = (t: Pick<TensorRef, "dtype" | "shape">): number => numel(t.shape) * (t.dtype === "F16" ? 2 : t.dtype === "BOOL" ? 1 : 4)
