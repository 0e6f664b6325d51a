/**
 * Lazy tensors over torch storages. A tensor is a strided view of a storage: a contiguous view
 * reads exactly its byte range; any other view (a transpose, a slice with steps, an expanded
 * dimension) is materialised in row-major order from the span of storage it covers. Tensors
 * sharing one storage (tied weights, views of one base) read it once: the storage is kept
 * until each tensor sharing it has been read, then dropped. Every read returns bytes the
 * caller owns, so a caller that computes in place cannot corrupt another tensor.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { ExpansionLimit, FormatError, type ModelIoError } from "../IoError.ts"
import { byteSize } from "../../tensor/DType.ts"
import * as Lineage from "../../tensor/Lineage.ts"
import { type ElementRange, numel, type TensorBytes, type TensorRef } from "../../tensor/TensorRef.ts"
import type { StorageRef, TensorView } from "./Globals.ts"

/** The bytes of one storage, read by byte range. @category models */
export interface StorageBytes {
  /** Total bytes of the storage. */
  readonly byteLength: number
  readonly read: (offset: number, length: number) => Effect.Effect<TensorBytes, ModelIoError>
}

/** Where a checkpoint's storages are. @category models */
export interface Storages {
  readonly file: string
  readonly format: string
  /** The bytes of a storage, or why there are none (a missing entry, a size mismatch). */
  readonly get: (storage: StorageRef) => StorageBytes | string
}

/**
 * The default of {@link ExpansionOptions.maxExpansion}: a tensor may be up to 16× its storage's
 * bytes (or 1 MiB more than them, for tiny broadcast buffers). Plain tensors, slices and tied
 * weights are at most 1×; only views with a zero or overlapping stride exceed it.
 */
export const DEFAULT_MAX_EXPANSION = 16

/** Bytes a view may always exceed its storage by, whatever the factor: tiny broadcast buffers cannot bomb. */
export const EXPANSION_SLACK_BYTES = 1024 * 1024

/** Options of {@link tensors}. */
export interface ExpansionOptions {
  /**
   * Largest ratio of a tensor's logical bytes (numel × dtype size) to the bytes of the storage it
   * views; `Infinity` turns the check off. Default {@link DEFAULT_MAX_EXPANSION}.
   */
  readonly maxExpansion?: number
}

/**
 * True when a view of `logical` bytes over a storage of `stored` bytes stays within `maxExpansion`:
 * at most `maxExpansion × stored`, or at most {@link EXPANSION_SLACK_BYTES} beyond `stored`.
 */
const withinExpansion = (logical: number, stored: number, maxExpansion: number): boolean =>
  logical <= stored * maxExpansion || logical - stored <= EXPANSION_SLACK_BYTES

/**
 * Checks every view against its storage (present, large enough for the furthest element the
 * view reaches, not expanding it beyond `maxExpansion`) and returns lazy tensors in the order
 * given, or the first problem found. Nothing is read.
 */
export const tensors = (views: ReadonlyArray<readonly [string, TensorView]>, storages: Storages, options: ExpansionOptions = {}): Array<TensorRef> | FormatError | ExpansionLimit => {
  const maxExpansion = options.maxExpansion ?? DEFAULT_MAX_EXPANSION
  const users = new Map<string, Set<string>>()
  for (const [name, v] of views) users.set(v.storage.key, (users.get(v.storage.key) ?? new Set()).add(name))
  const shared = new SharedStorages(users)
  const out: Array<TensorRef> = []
  for (const [name, view] of views) {
    const fail = (detail: string) => new FormatError({ file: storages.file, format: storages.format, tensor: name, detail })
    const storage = storages.get(view.storage)
    if (typeof storage === "string") return fail(storage)
    const size = byteSize[view.storage.dtype]
    const count = numel(view.shape)
    if (!Number.isSafeInteger(count)) return fail(`shape [${view.shape.join(", ")}] has too many elements`)
    const last = count === 0 ? view.offset : view.offset + view.shape.reduce((s, d, i) => s + (d - 1) * view.stride[i]!, 0)
    const needed = count === 0 ? 0 : (last + 1) * size
    if (!Number.isSafeInteger(needed) || needed > storage.byteLength) {
      return fail(`view (offset ${view.offset}, shape [${view.shape.join(", ")}], stride [${view.stride.join(", ")}]) reaches byte ${needed} of a ${storage.byteLength}-byte storage "${view.storage.key}"`)
    }
    // A zero or overlapping stride reads storage elements more than once: 4 stored bytes can
    // describe petabytes. Compared with the storage's own bytes, so slices and tied weights pass.
    const logical = count * size
    if (!withinExpansion(logical, storage.byteLength, maxExpansion)) {
      return new ExpansionLimit({ file: storages.file, tensor: name, logicalBytes: logical, storedBytes: storage.byteLength, limit: maxExpansion })
    }
    out.push(makeTensor(name, view, storage, shared, storages, fail))
  }
  return out
}

/**
 * Storages referenced by several tensors. A storage is read whole on the first whole read of
 * any of them and kept until every one of them has had its whole read.
 */
class SharedStorages {
  private readonly pending: Map<string, Set<string>>
  private readonly held = new Map<string, TensorBytes>()
  constructor(users: ReadonlyMap<string, ReadonlySet<string>>) {
    this.pending = new Map([...users].filter(([, names]) => names.size > 1).map(([key, names]) => [key, new Set(names)]))
  }
  isShared(key: string): boolean {
    return this.pending.has(key) || this.held.has(key)
  }
  /** The held copy of a storage, if some tensor's read left it here. */
  peek(key: string): TensorBytes | undefined {
    return this.held.get(key)
  }
  /** The whole storage for `tensor`'s whole read; the last of its users releases it. */
  take(key: string, tensor: string, storage: StorageBytes): Effect.Effect<TensorBytes, ModelIoError> {
    const release = (bytes: TensorBytes) => {
      const waiting = this.pending.get(key)
      waiting?.delete(tensor)
      if (waiting === undefined || waiting.size === 0) this.held.delete(key)
      else this.held.set(key, bytes)
      return bytes
    }
    const held = this.held.get(key)
    return held !== undefined ? Effect.sync(() => release(held)) : Effect.map(storage.read(0, storage.byteLength), release)
  }
}

const makeTensor = (name: string, view: TensorView, storage: StorageBytes, shared: SharedStorages, storages: Storages, fail: (detail: string) => FormatError): TensorRef => {
  const dtype = view.storage.dtype
  const size = byteSize[dtype]
  const count = numel(view.shape)
  const contiguous = isContiguous(view.shape, view.stride)
  const key = view.storage.key
  const last = count === 0 ? view.offset : view.offset + view.shape.reduce((s, d, i) => s + (d - 1) * view.stride[i]!, 0)

  /** `length` bytes at `offset` of the storage, as a copy the caller owns. */
  const bytesAt = (offset: number, length: number, whole: boolean): Effect.Effect<TensorBytes, ModelIoError> => {
    const held = shared.peek(key)
    if (!shared.isShared(key) || (held === undefined && !whole)) return storage.read(offset, length)
    const all = whole ? shared.take(key, name, storage) : Effect.succeed(held!)
    return Effect.map(all, (bytes) => bytes.slice(offset, offset + length))
  }

  const read = (range?: ElementRange): Effect.Effect<TensorBytes, ModelIoError> => {
    const start = range?.start ?? 0
    const end = range?.end ?? count
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && start <= end && end <= count)) {
      return Effect.fail(fail(`element range [${start}, ${end}) is outside its ${count} elements`))
    }
    if (start === end) return Effect.succeed(new Uint8Array(0))
    const whole = start === 0 && end === count
    if (contiguous) return bytesAt((view.offset + start) * size, (end - start) * size, whole)
    // The span of storage the view covers, then a row-major gather out of it.
    return Effect.map(bytesAt(view.offset * size, (last - view.offset + 1) * size, whole), (span) =>
      gather(span, view.shape, view.stride, start, end, size))
  }
  // Close, not exact: a zip storage's first read also reads its entry's local header, a shared
  // storage is read whole once for all its tensors, and a strided view reads its span per range.
  const lineage = Lineage.stored(storages.file, contiguous ? count * size : (last - view.offset + 1) * size, { exact: false })
  return { name, dtype, shape: view.shape, read, lineage }
}

/** Row-major strides, ignoring dimensions of size 1 (whose stride torch leaves arbitrary). */
export const isContiguous = (shape: ReadonlyArray<number>, stride: ReadonlyArray<number>): boolean => {
  let expected = 1
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] === 0) return true
    if (shape[i] !== 1 && stride[i] !== expected) return false
    expected *= shape[i]!
  }
  return true
}

/**
 * Elements `[start, end)` in row-major order of a strided view whose first element is byte 0
 * of `span`. Runs along a unit-stride last dimension are copied whole.
 */
export const gather = (span: Uint8Array, shape: ReadonlyArray<number>, stride: ReadonlyArray<number>, start: number, end: number, size: number): TensorBytes => {
  const out = new Uint8Array((end - start) * size)
  const rank = shape.length
  if (rank === 0) {
    out.set(span.subarray(0, size))
    return out
  }
  const index = new Array<number>(rank).fill(0)
  let rest = start
  for (let d = rank - 1; d >= 0; d--) {
    index[d] = rest % shape[d]!
    rest = Math.floor(rest / shape[d]!)
  }
  const innerLength = shape[rank - 1]!
  const innerStride = stride[rank - 1]!
  let written = 0
  const total = end - start
  while (written < total) {
    let base = 0
    for (let d = 0; d < rank - 1; d++) base += index[d]! * stride[d]!
    const from = index[rank - 1]!
    const run = Math.min(innerLength - from, total - written)
    if (innerStride === 1) out.set(span.subarray((base + from) * size, (base + from + run) * size), written * size)
    else for (let j = 0; j < run; j++) out.set(span.subarray((base + (from + j) * innerStride) * size, (base + (from + j) * innerStride + 1) * size), (written + j) * size)
    written += run
    index[rank - 1] = 0
    for (let d = rank - 2; d >= 0; d--) {
      if (++index[d]! < shape[d]!) break
      index[d] = 0
    }
  }
  return out
}
