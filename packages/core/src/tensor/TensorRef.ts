/**
 * A lazy tensor: its name, dtype and shape are known from a header; its bytes are read (or
 * computed) only when a stage asks for them, and only the element range it asks for.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { byteSize, type DType, toFloat32 } from "./DType.ts"
import type { Lineage } from "./Lineage.ts"

/** A half-open range of elements, in row-major order. @category models */
export interface ElementRange {
  readonly start: number
  readonly end: number
}

/**
 * Why a tensor could not be read: an I/O error of its file (`ModelIoError`), or the failure of
 * the computation a derived tensor (a merge) runs on read — any tagged error with a message.
 */
export interface TensorError {
  readonly _tag: string
  readonly message: string
}

/** Raw little-endian bytes of a tensor's dtype, as every supported format stores them. */
export type TensorBytes = Uint8Array<ArrayBuffer>

/** @category models */
export interface TensorRef {
  readonly name: string
  readonly dtype: DType
  readonly shape: ReadonlyArray<number>
  /** Reads elements `[range.start, range.end)` (all when omitted) as raw bytes of `dtype`; the bytes may be shared with the source: treat them as read-only. */
  readonly read: (range?: ElementRange) => Effect.Effect<TensorBytes, TensorError>
  /**
   * Where its bytes come from (files, or other tensors), for `crucible plan`; see `Lineage.ts`.
   * A tensor derived with `{ ...t, read }` keeps `t`'s, which is right when its `read` reads `t`.
   */
  readonly lineage?: Lineage | undefined
}

/** A fast path of `read`: the same bytes written into `target` (exactly the range's byte length). */
export type ReadInto = (range: ElementRange | undefined, target: Uint8Array) => Effect.Effect<void, TensorError>

// Fast paths are kept beside the tensors, not on them: a tensor derived with `{ ...t, read }`
// (a user's stage that transforms the bytes) must not inherit `t`'s way of reading its bytes.
const fastReads = new WeakMap<TensorRef, ReadInto>()

/**
 * Memory a consumer may take its {@link readInto} targets from: the memory a fast path computes in
 * (a merge's WebAssembly arena), so a target taken from it receives the result where it is
 * computed, without a copy into the target. Any target still works; this one only spares a copy.
 */
export interface TargetMemory {
  /** Shared bytes of `byteLength` for the consumer to keep and reuse, or undefined when there is no room. */
  readonly take: (byteLength: number) => Uint8Array<SharedArrayBuffer> | undefined
  /** Returns bytes `take` gave once the consumer is done with them (nothing may still read or write them). */
  readonly give: (bytes: Uint8Array) => void
}

const targetMemories = new WeakMap<TensorRef, TargetMemory>()

/**
 * Gives `ref` a fast path for {@link readInto}: bytes go straight into memory the caller reuses
 * (a file read into a buffer, a merge computed into it) instead of a fresh buffer per read.
 * It must produce exactly the bytes `read` produces. With `memory`, targets taken from it are
 * filled without a copy ({@link TargetMemory}). Returns `ref`.
 */
export const withReadInto = <T extends TensorRef>(ref: T, readInto: ReadInto, memory?: TargetMemory): T => {
  fastReads.set(ref, readInto)
  if (memory !== undefined) targetMemories.set(ref, memory)
  return ref
}

/** The memory `ref`'s fast path computes in, when it offers one ({@link withReadInto}). */
export const targetMemoryOf = (ref: TensorRef): TargetMemory | undefined => targetMemories.get(ref)

/**
 * `ref` with `lineage`: the same tensor (its fast {@link readInto} path included), described for
 * the planner. @category constructors
 */
export const withLineage = <T extends TensorRef>(ref: T, lineage: Lineage): T => {
  const described = { ...ref, lineage }
  const fast = fastReads.get(ref)
  if (fast !== undefined) fastReads.set(described, fast)
  const memory = targetMemories.get(ref)
  if (memory !== undefined) targetMemories.set(described, memory)
  return described
}

/** Whether `ref` was given a fast {@link readInto} path. */
export const hasReadInto = (ref: TensorRef): boolean => fastReads.has(ref)

/** Number of elements of a shape (1 for a 0-dim scalar). */
export const numel = (shape: ReadonlyArray<number>): number => shape.reduce((n, d) => n * d, 1)

/** Bytes a tensor occupies in its dtype. */
export const byteLength = (ref: Pick<TensorRef, "dtype" | "shape">): number => numel(ref.shape) * byteSize[ref.dtype]

/** The whole range of a tensor, or the given one. */
export const rangeOf = (ref: Pick<TensorRef, "shape">, range?: ElementRange): ElementRange =>
  range ?? { start: 0, end: numel(ref.shape) }

/** A tensor over bytes already in memory (reading it reads no file). @category constructors */
export const fromBytes = (name: string, dtype: DType, shape: ReadonlyArray<number>, bytes: TensorBytes): TensorRef => ({
  name,
  dtype,
  shape,
  lineage: { _tag: "Stored", reads: [] },
  read: (range) => {
    const { start, end } = rangeOf({ shape }, range)
    const size = byteSize[dtype]
    return Effect.succeed(range === undefined ? bytes : bytes.slice(start * size, end * size))
  }
})

/**
 * Reads elements `range` of `ref` as raw bytes into `target` (its byte length must be the range's):
 * by the fast path of {@link withReadInto} where the tensor has one, else through `read` and one copy.
 */
export const readInto = (ref: TensorRef, range: ElementRange | undefined, target: Uint8Array): Effect.Effect<void, TensorError> => {
  const { start, end } = rangeOf(ref, range)
  const expected = (end - start) * byteSize[ref.dtype]
  if (target.byteLength !== expected) return Effect.die(new RangeError(`readInto ${ref.name}: target has ${target.byteLength} bytes, the range ${start}..${end} has ${expected}`))
  const fast = fastReads.get(ref)
  return fast !== undefined ? fast(range, target) : Effect.map(ref.read(range), (bytes) => target.set(bytes))
}

/**
 * Reads elements `range` of `ref` as float32 into `target` (exactly the range's length): float32
 * tensors by {@link readInto} (straight from the file where they can), others read and converted.
 */
export const readFloat32Into = (ref: TensorRef, range: ElementRange | undefined, target: Float32Array): Effect.Effect<void, TensorError> =>
  ref.dtype === "F32"
    ? readInto(ref, range, new Uint8Array(target.buffer, target.byteOffset, target.byteLength))
    : Effect.map(ref.read(range), (bytes) => target.set(toFloat32(bytes, ref.dtype)))

/** Bytes that `refs` occupy in their dtypes. */
export const totalByteLength = (refs: Iterable<Pick<TensorRef, "dtype" | "shape">>): number => {
  let total = 0
  for (const ref of refs) total += byteLength(ref)
  return total
}

/** Reads a tensor (or a range of it) as float32. */
export const readFloat32 = (ref: TensorRef, range?: ElementRange): Effect.Effect<Float32Array<ArrayBuffer>, TensorError> =>
  Effect.map(ref.read(range), (bytes) => toFloat32(bytes, ref.dtype))

/** `[2, 3]` → `"2×3"`, `[]` → `"scalar"`. */
export const formatShape = (shape: ReadonlyArray<number>): string => (shape.length === 0 ? "scalar" : shape.join("×"))
