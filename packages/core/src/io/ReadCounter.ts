/**
 * Bytes read from each model file, counted where the reads happen (`ByteSource`, and the whole-file
 * reads of an index or a `model.json`). A run records them in its manifest and `crucible plan`
 * counts the headers its dry run reads with it, so the plan's figures can be checked against what
 * a run really reads. The default counts nothing.
 *
 * A source takes the counter in effect when it is opened: reads made later, from another stage's
 * fiber (a `save` pulling a merge of loaded models), are counted where the file was opened.
 *
 * @since 0.1.0
 */
import { Context } from "effect"

/** Where reads are reported. @category models */
export interface ReadCounter {
  /** `bytes` more were read from `file`; `direct` when they were read around the page cache (`DirectRead`). */
  readonly add: (file: string, bytes: number, direct?: boolean) => void
}

/** Counts nothing: the default. @category constructors */
export const none: ReadCounter = { add: () => {} }

/** The counter reads are reported to (default: {@link none}). @category services */
export const ReadCounter = Context.Reference<ReadCounter>("crucible/ReadCounter", { defaultValue: () => none })

/** A counter that keeps a total per file. @category models */
export interface Tally extends ReadCounter {
  /** Bytes read so far, by file, in the order the files were first read. */
  readonly totals: () => ReadonlyMap<string, number>
  /** Of those, the bytes read around the page cache, by file (files read only through the cache are absent). */
  readonly directTotals: () => ReadonlyMap<string, number>
}

/** A fresh {@link Tally}. @category constructors */
export const tally = (): Tally => {
  const totals = new Map<string, number>()
  const direct = new Map<string, number>()
  return {
    add: (file, bytes, isDirect) => {
      totals.set(file, (totals.get(file) ?? 0) + bytes)
      if (isDirect === true) direct.set(file, (direct.get(file) ?? 0) + bytes)
    },
    totals: () => new Map(totals),
    directTotals: () => new Map(direct)
  }
}
