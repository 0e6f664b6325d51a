/**
 * Where a tensor's bytes come from, as plain data: read from files, or computed from other tensors.
 * `crucible plan` walks it to tell what a run will read from each file and how much memory each
 * computation holds, without reading a byte of tensor data. Readers and the built-in kinds give
 * their tensors one (`TensorRef.withLineage`); a tensor without one (a user's kind that builds
 * tensors by hand) is planned as unknown, and the plan says so.
 *
 * A full read of a tensor (every element range once, in whatever chunks) reads:
 * - `Stored`: its `reads`, the bytes it occupies in each file;
 * - `Derived`: a full read of each input. Elementwise computations read the same range of each
 *   input as is asked of them; whole-tensor ones read each input whole on the first range and keep
 *   the result until the last one is read; either way, once per full read.
 *
 * @since 0.1.0
 */
import type { TensorRef } from "./TensorRef.ts"
import { byteLength, numel } from "./TensorRef.ts"

/** @category models */
export type Lineage = Stored | Derived

/** Bytes read from files. @category models */
export interface Stored {
  readonly _tag: "Stored"
  readonly reads: ReadonlyArray<{ readonly file: string; readonly bytes: number }>
  /** False where the reader's reads are close to `reads` but not exactly them (it says why). */
  readonly exact?: boolean | undefined
}

/** Computed from other tensors. @category models */
export interface Derived {
  readonly _tag: "Derived"
  readonly inputs: ReadonlyArray<TensorRef>
  /**
   * Memory the computation holds while it serves a range of n elements: `bytes + perElement · n`
   * (what it takes from `--memory-limit`: a chunk's inputs and output for an elementwise merge,
   * the whole tensor's for a whole-tensor one).
   */
  readonly memory: { readonly bytes: number; readonly perElement: number }
}

/** Read from `file`, where it occupies `bytes`. @category constructors */
export const stored = (file: string, bytes: number, options: { readonly exact?: boolean } = {}): Stored => ({
  _tag: "Stored",
  reads: [{ file, bytes }],
  ...(options.exact === false ? { exact: false } : {})
})

/** Computed from `inputs`, holding `memory` while it computes. @category constructors */
export const derived = (inputs: ReadonlyArray<TensorRef>, memory: { readonly bytes?: number; readonly perElement?: number }): Derived => ({
  _tag: "Derived",
  inputs,
  memory: { bytes: memory.bytes ?? 0, perElement: memory.perElement ?? 0 }
})

/** What full reads of some tensors read. @category models */
export interface Reads {
  /** Bytes by file, in the order the files are first met. */
  readonly files: ReadonlyMap<string, number>
  /** Bytes of tensors without a lineage, whose files are unknown (counted at their own size). */
  readonly unknown: number
  /** Files whose bytes are close, not exact (`Stored.exact: false`). */
  readonly inexact: ReadonlySet<string>
}

/** What one full read of each of `tensors` reads (a tensor given twice is read twice). */
export const reads = (tensors: Iterable<TensorRef>): Reads => {
  const files = new Map<string, number>()
  const inexact = new Set<string>()
  let unknown = 0
  // An explicit stack: a chain of merges of merges may be deep.
  const stack = [...tensors].reverse()
  while (stack.length > 0) {
    const t = stack.pop()!
    const lineage = t.lineage
    if (lineage === undefined) unknown += byteLength(t)
    else if (lineage._tag === "Stored") {
      for (const r of lineage.reads) {
        files.set(r.file, (files.get(r.file) ?? 0) + r.bytes)
        if (lineage.exact === false) inexact.add(r.file)
      }
    } else for (let i = lineage.inputs.length - 1; i >= 0; i--) stack.push(lineage.inputs[i]!)
  }
  return { files, unknown, inexact }
}

/** The memory a derived tensor's computation holds while serving ranges of `chunk` elements (0 for stored ones). */
export const workingSet = (tensor: TensorRef, chunk: number): number => {
  const lineage = tensor.lineage
  if (lineage?._tag !== "Derived") return 0
  return lineage.memory.bytes + lineage.memory.perElement * Math.min(numel(tensor.shape), chunk)
}
