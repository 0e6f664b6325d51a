/**
 * A model is a named, ordered set of lazy tensors plus string metadata — what a checkpoint
 * holds, whatever its format. Stages pass models between them; bytes move only when read.
 *
 * @since 0.1.0
 */
import type { TensorRef } from "../tensor/TensorRef.ts"
import { byteLength, totalByteLength } from "../tensor/TensorRef.ts"

/** @category models */
export interface Model {
  /** Tensors by name, in the order of the source (a writer keeps it). */
  readonly tensors: ReadonlyMap<string, TensorRef>
  /** String metadata (safetensors `__metadata__`), carried to outputs. */
  readonly metadata: Readonly<Record<string, string>>
  /** Where it came from: a file path or a stage id, for messages. */
  readonly source: string
  /** The files its bytes are read from, transitively: a writer refuses to overwrite them. */
  readonly files: ReadonlyArray<string>
}

/** @category constructors */
export const make = (
  source: string,
  tensors: Iterable<TensorRef>,
  metadata: Readonly<Record<string, string>> = {},
  files: ReadonlyArray<string> = []
): Model => ({
  source,
  metadata,
  files,
  tensors: new Map(Array.from(tensors, (t) => [t.name, t] as const))
})

/** Total bytes of all tensors in their stored dtypes. */
export const totalBytes = (model: Model): number => totalByteLength(model.tensors.values())

/** The largest tensor's bytes: the unit that bounds a streaming stage's memory. */
export const largestTensorBytes = (model: Model): number => {
  let max = 0
  for (const t of model.tensors.values()) max = Math.max(max, byteLength(t))
  return max
}
