/**
 * The safetensors format (https://huggingface.co/docs/safetensors): lazy reads by byte range,
 * and a streaming, atomic writer.
 *
 * @since 0.1.0
 */
import { Effect, Fiber, Scope } from "effect"
import * as AtomicFile from "../AtomicFile.ts"
import * as ByteSource from "../ByteSource.ts"
import * as DirectRead from "../DirectRead.ts"
import { FormatError, type ModelIoError, type IoError } from "../IoError.ts"
import * as Model from "../../model/Model.ts"
import { byteSize } from "../../tensor/DType.ts"
import * as Lineage from "../../tensor/Lineage.ts"
import { hasReadInto, numel, rangeOf, readInto, type TargetMemory, targetMemoryOf, type TensorError, type TensorRef, withReadInto } from "../../tensor/TensorRef.ts"
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
      const tensor: TensorRef = {
        name: e.name,
        dtype: e.dtype,
        shape: e.shape,
        read: (range) => {
          const { start, end } = rangeOf(e, range)
          return source.read(at + start * size, (end - start) * size)
        },
        lineage: Lineage.stored(source.path, e.end - e.begin)
      }
      return withReadInto(tensor, (range, target) => source.readInto(at + rangeOf(e, range).start * size, target))
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

/**
 * Elements the writer reads per step by default: 1M (4 MB of f32), large enough for full I/O
 * speed, small enough to bound memory. @category constants
 */
export const DEFAULT_CHUNK_ELEMENTS = 1024 * 1024

/**
 * Streams `model` into `path` tensor by tensor (in chunks of `chunkElements`), atomically: the
 * file appears whole at the end, or not at all.
 */
export const write = (path: string, model: Model.Model, options: WriteOptions = {}): Effect.Effect<Written, ModelIoError | IoError | TensorError> =>
  Effect.scoped(
    Effect.gen(function* () {
      yield* AtomicFile.refuseOverwrite([path], model.files)
      const bytes = Model.totalBytes(model)
      const file = yield* AtomicFile.open(path, { expectedBytes: bytes, direct: DirectRead.exceedsCache(bytes) })
      const written = yield* stream(file, [...model.tensors.values()], { ...model.metadata, ...options.metadata }, options)
      yield* file.commit
      return written
    })
  )

/**
 * Writes a header and the bytes of `tensors` into an open atomic file without committing it
 * (the sharded writer commits its shards together). `progress` offsets the indices reported.
 *
 * Chunks go through three reused buffers in shared memory: chunk k+2 is read (or computed, for a
 * merge's lazy tensor) into one while chunks k and k+1 are written and hashed from the others, and a
 * tensor with a fast path (`TensorRef.withReadInto`) is read straight into the buffer. Reused buffers also spare the fresh,
 * page-faulted buffer per chunk that would otherwise be garbage; shared ones let the hash run on
 * a worker thread without a copy (`Digest.ts`). When a tensor offers the memory its fast path
 * computes in (`TensorRef.TargetMemory`: `merge/linear`'s arena), the buffers are taken from it, so
 * the merge's kernel writes each chunk where it is then written and hashed, with no copy between
 * (given back once the last write is done).
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
    const buffers = chunkBuffers(targetMemory(tensors), bufferBytes(tensors, chunk) / BUFFERS)
    // Up to two writes in flight (each chunk's write and hash overlap the next chunk's); a
    // tensor is reported written once the write of its last chunk is done.
    const inFlight: Array<{ readonly fiber: Fiber.Fiber<void, IoError>; readonly last: number | undefined }> = []
    const report = (i: number) => (options.onTensorWritten === undefined ? Effect.void : options.onTensorWritten(tensors[i]!, progress.first + i, progress.total))
    const settleOldest = Effect.gen(function* () {
      const oldest = inFlight.shift()
      if (oldest === undefined) return
      yield* Fiber.join(oldest.fiber)
      if (oldest.last !== undefined) yield* report(oldest.last)
    })
    const settleAll = Effect.whileLoop({ while: () => inFlight.length > 0, body: () => settleOldest, step: () => {} })
    for (let i = 0; i < tensors.length; i++) {
      const tensor = tensors[i]!
      const n = numel(tensor.shape)
      for (let start = 0; start < n; start += chunk) {
        const end = Math.min(n, start + chunk)
        const range = n <= chunk ? undefined : { start, end }
        // The buffer the write before the two in flight used: that write is done.
        const into = buffers.next((end - start) * byteSize[tensor.dtype])
        if (hasReadInto(tensor)) {
          yield* readInto(tensor, range, into)
        } else {
          const bytes = yield* tensor.read(range)
          if (bytes.byteLength !== into.byteLength) {
            return yield* new FormatError({ file: file.target, format: FORMAT, tensor: tensor.name, detail: `source produced ${bytes.byteLength} bytes where ${into.byteLength} were expected` })
          }
          into.set(bytes)
        }
        if (inFlight.length === BUFFERS - 1) yield* settleOldest
        inFlight.push({ fiber: yield* Effect.forkChild(file.write(into), { startImmediately: true }), last: end === n ? i : undefined })
      }
      if (n === 0) {
        yield* settleAll
        yield* report(i)
      }
    }
    yield* settleAll
    // Only here: after a failure a write may still be using a buffer (the memory goes with its owner's scope).
    buffers.giveBack()
    return { path: file.target, bytes: file.written(), sha256: yield* file.digest, tensors: tensors.length }
  })

/** Chunk buffers of the writer: one being filled, up to two being written. */
const BUFFERS = 3

/** The memory the writer's chunk buffers reach for `tensors`: {@link BUFFERS} × the largest chunk's bytes. */
export const bufferBytes = (tensors: Iterable<TensorRef>, chunkElements = DEFAULT_CHUNK_ELEMENTS): number => {
  let largest = 0
  for (const t of tensors) largest = Math.max(largest, Math.min(numel(t.shape), chunkElements) * byteSize[t.dtype])
  return BUFFERS * largest
}

/** The memory the first tensor that offers one computes in ({@link TargetMemory}). */
const targetMemory = (tensors: ReadonlyArray<TensorRef>): TargetMemory | undefined => {
  for (const t of tensors) {
    const memory = targetMemoryOf(t)
    if (memory !== undefined) return memory
  }
  return undefined
}

/**
 * {@link BUFFERS} byte buffers in shared memory, handed out in turn: the one handed out is not
 * one of the two handed out just before (which may still be being written). Each grows to the
 * largest chunk; from `memory`, each is taken once at `largest` bytes (the largest chunk), a fresh
 * `SharedArrayBuffer` where it has no room.
 */
const chunkBuffers = (memory: TargetMemory | undefined, largest: number) => {
  const buffers: Array<Uint8Array> = Array.from({ length: BUFFERS }, () => new Uint8Array(0))
  const taken = new Set<Uint8Array>()
  let turn = 0
  return {
    next: (bytes: number): Uint8Array => {
      turn = (turn + 1) % BUFFERS
      const current = buffers[turn]!
      if (current.byteLength < bytes) {
        if (taken.delete(current)) memory!.give(current)
        const fromMemory = memory?.take(Math.max(bytes, largest))
        if (fromMemory !== undefined) taken.add(fromMemory)
        buffers[turn] = fromMemory ?? new Uint8Array(new SharedArrayBuffer(bytes))
      }
      return buffers[turn]!.subarray(0, bytes)
    },
    giveBack: (): void => {
      for (const b of taken) memory!.give(b)
      taken.clear()
    }
  }
}
