/**
 * Whole input tensors read into buffers that are reused from one tensor to the next, for merges
 * that need a whole tensor at once (TIES and every `Method` kind). Reading a 64 MiB tensor as
 * one fresh buffer per input per tensor makes V8 run a full garbage collection for nearly every
 * read (each is external memory that lives through several young-generation collections);
 * reading it in chunks straight into the same buffers (`TensorRef.readInto`; float32 tensors
 * without it, and other dtypes, are read and copied or converted) leaves at most short-lived
 * chunks behind, which the young generation frees.
 *
 * The buffers grow to the largest tensor seen and are dropped by `release` (a merge calls it after
 * its last tensor, and when its scope closes), so an idle merge holds no memory. A second read
 * while one is in use (two consumers pulling different tensors at once) gets fresh arrays
 * instead of waiting. With `shared`, the arrays live in `SharedArrayBuffer`s, so a worker pool
 * (`kernels/Pool.ts`) can run kernels on them.
 *
 * @since 0.1.0
 */
import { TensorRef } from "@crucible/core"
import { Effect } from "effect"

/** @category models */
export interface TensorBuffers {
  /**
   * Reads each tensor (all with the same number of elements) as float32 and runs `use` on the
   * arrays. The arrays are only valid until `use` ends: the next read overwrites them, so a
   * result that is one of them (or a view of one) must be copied by `use`; see {@link owns}.
   */
  readonly read: <A, E>(
    tensors: ReadonlyArray<TensorRef.TensorRef>,
    use: (arrays: ReadonlyArray<Float32Array>) => Effect.Effect<A, E>
  ) => Effect.Effect<A, E | TensorRef.TensorError>
  /** Whether `array` shares memory with one of the reused buffers. */
  readonly owns: (array: Float32Array) => boolean
  /** Drops the buffers (a later read allocates them again). */
  readonly release: () => void
}

/** Elements read per step: large enough for full read speed, small enough to die young. */
const CHUNK = 1024 * 1024

/** @category constructors */
export const make = (options: { readonly shared?: boolean } = {}): TensorBuffers => {
  const allocate = (n: number): Float32Array => (options.shared === true ? new Float32Array(new SharedArrayBuffer(n * 4)) : new Float32Array(n))
  let buffers: Array<Float32Array> = []
  let busy = false

  const fill = (tensor: TensorRef.TensorRef, into: Float32Array): Effect.Effect<void, TensorRef.TensorError> =>
    Effect.gen(function* () {
      const n = into.length
      for (let start = 0; start < n; start += CHUNK) {
        const end = Math.min(n, start + CHUNK)
        yield* TensorRef.readFloat32Into(tensor, n <= CHUNK ? undefined : { start, end }, into.subarray(start, end))
      }
    })

  const reused = (count: number, n: number): Array<Float32Array> => {
    if (buffers.length < count || (buffers[0]?.length ?? 0) < n) {
      const capacity = Math.max(n, buffers[0]?.length ?? 0)
      buffers = Array.from({ length: Math.max(count, buffers.length) }, () => allocate(capacity))
    }
    return buffers.slice(0, count).map((b) => b.subarray(0, n))
  }

  return {
    read: (tensors, use) =>
      Effect.suspend(() => {
        const n = TensorRef.numel(tensors[0]?.shape ?? [])
        const shared = !busy
        if (shared) busy = true
        const arrays = shared ? reused(tensors.length, n) : tensors.map(() => allocate(n))
        const run = Effect.flatMap(Effect.forEach(tensors, (t, i) => fill(t, arrays[i]!), { concurrency: "unbounded", discard: true }), () => use(arrays))
        return shared ? Effect.ensuring(run, Effect.sync(() => { busy = false })) : run
      }),
    owns: (array) => buffers.some((b) => b.buffer === array.buffer),
    release: () => {
      if (!busy) buffers = []
    }
  }
}
