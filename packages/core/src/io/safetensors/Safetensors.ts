/**
 * The safetensors format (https://huggingface.co/docs/safetensors): lazy reads by byte range,
 * and a streaming, atomic writer.
 *
 * @since 0.1.0
 */
import { Effect, Scope } from "effect"
import * as AtomicFile from "../AtomicFile.ts"
import * as ByteSource from "../ByteSource.ts"
import { FormatError, type ModelIoError, type IoError } from "../IoError.ts"
import * as Model from "../../model/Model.ts"
import { byteSize } from "../../tensor/DType.ts"
import { numel, rangeOf, type TensorError, type TensorRef } from "../../tensor/TensorRef.ts"
import * as Header from "./Header.ts"

const FORMAT = "safetensors"

/** Reads the header of `path` and returns a model whose tensors are read on demand while the scope is open. */
export const read = (path: string): Effect.Effect<Model.Model, ModelIoError, Scope.Scope> =>
  Effect.gen(function* () {
    const source = yield* ByteSource.open(path, FORMAT)
    return yield* fromSource(source)
  })

/** Reads a safetensors model from an open byte source. */
export const fromSource = (source: ByteSource.ByteSource): Effect.Effect<Model.Model, ModelIoError> =>
  Effect.gen(function* () {
    const fail = (detail: string) => Effect.fail(new FormatError({ file: source.path, format: FORMAT, detail }))
    if (source.size < 8) return yield* fail(`file is ${source.size} bytes, shorter than the 8-byte header length`)
    const lengthBytes = yield* source.read(0, 8)
    const length = new DataView(lengthBytes.buffer).getBigUint64(0, true)
    const lengthProblem = Header.checkHeaderLength(length, source.size)
    if (lengthProblem !== undefined) return yield* fail(lengthProblem)
    let json: string
    try {
      json = new TextDecoder("utf-8", { fatal: true }).decode(yield* source.read(8, Number(length)))
    } catch {
      return yield* fail("header is not valid UTF-8")
    }
    const header = Header.parse(json, Number(length), source.size)
    if ("problems" in header) return yield* fail(header.problems.join("; "))
    const tensors = header.entries.map((e): TensorRef => {
      const size = byteSize[e.dtype]
      const at = header.dataStart + e.begin
      return {
        name: e.name,
        dtype: e.dtype,
        shape: e.shape,
        read: (range) => {
          const { start, end } = rangeOf(e, range)
          return source.read(at + start * size, (end - start) * size)
        }
      }
    })
    return Model.make(source.path, tensors, header.metadata, [source.path])
  })

/** Options of {@link write}. */
export interface WriteOptions {
  /** Metadata written to `__metadata__` (merged over the model's own). */
  readonly metadata?: Readonly<Record<string, string>>
  /** Elements read and written per step: bounds memory for huge tensors. */
  readonly chunkElements?: number
  /** Called after each tensor is written (for progress reports). */
  readonly onTensorWritten?: (tensor: TensorRef, index: number, total: number) => Effect.Effect<void>
}

/** What a write produced. */
export interface Written {
  readonly path: string
  readonly bytes: number
  readonly sha256: string
  readonly tensors: number
}

// 1M elements (4 MB of f32) per step: large enough for full I/O speed, small enough to bound memory.
const DEFAULT_CHUNK_ELEMENTS = 1024 * 1024

/**
 * Streams `model` into `path` tensor by tensor (in chunks of `chunkElements`), atomically: the
 * file appears whole at the end, or not at all.
 */
export const write = (path: string, model: Model.Model, options: WriteOptions = {}): Effect.Effect<Written, ModelIoError | IoError | TensorError> =>
  Effect.scoped(
    Effect.gen(function* () {
      yield* AtomicFile.refuseOverwrite([path], model.files)
      const file = yield* AtomicFile.open(path)
      const written = yield* stream(file, [...model.tensors.values()], { ...model.metadata, ...options.metadata }, options)
      yield* file.commit
      return written
    })
  )

/**
 * Writes a header and the bytes of `tensors` into an open atomic file without committing it
 * (the sharded writer commits its shards together). `progress` offsets the indices reported.
 */
export const stream = (
  file: AtomicFile.AtomicFile,
  tensors: ReadonlyArray<TensorRef>,
  metadata: Readonly<Record<string, string>>,
  options: WriteOptions,
  progress: { readonly first: number; readonly total: number } = { first: 0, total: tensors.length }
): Effect.Effect<Written, ModelIoError | IoError | TensorError> =>
  Effect.gen(function* () {
    const { header } = Header.serialize(tensors, metadata)
    yield* file.write(header)
    const chunk = options.chunkElements ?? DEFAULT_CHUNK_ELEMENTS
    for (let i = 0; i < tensors.length; i++) {
      const tensor = tensors[i]!
      const n = numel(tensor.shape)
      for (let start = 0; start < n; start += chunk) {
        const end = Math.min(n, start + chunk)
        const bytes = yield* tensor.read(n <= chunk ? undefined : { start, end })
        const expected = (end - start) * byteSize[tensor.dtype]
        if (bytes.byteLength !== expected) {
          return yield* new FormatError({ file: file.target, format: FORMAT, tensor: tensor.name, detail: `source produced ${bytes.byteLength} bytes where ${expected} were expected` })
        }
        yield* file.write(bytes)
      }
      if (options.onTensorWritten !== undefined) yield* options.onTensorWritten(tensor, progress.first + i, progress.total)
    }
    return { path: file.target, bytes: file.written(), sha256: file.digest(), tensors: tensors.length }
  })
