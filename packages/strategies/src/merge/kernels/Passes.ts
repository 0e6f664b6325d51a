/**
 * A kernel of several passes over a tensor (Karcher's iterations, SCE's and Arcee Fusion's exact
 * selections) written once, as a generator: it yields the op arguments of each pass with the
 * ranges to run them on and receives the per-range results in range order. {@link runInThread}
 * drives it in the calling thread; `Parallel.ts` drives the same generator on a worker pool. So
 * the single-threaded kernel and its pool form make the same decisions from the same numbers.
 *
 * @since 0.1.0
 */
import type { Range } from "./Pool.ts"

/** One pass: the op's arguments and the element ranges it runs on. @category models */
export interface Pass<Args> {
  readonly args: Args
  readonly ranges: ReadonlyArray<Range>
}

/** A multi-pass kernel: yields passes, gets each pass's per-range results, returns its result. @category models */
export type Passes<Args, Out> = Generator<Pass<Args>, Out, ReadonlyArray<unknown>>

/** Runs every pass in this thread with `step` (the op's range function). @category runners */
export const runInThread = <Args, Out>(passes: Passes<Args, Out>, step: (args: Args, start: number, end: number) => unknown): Out => {
  let next = passes.next()
  while (!next.done) {
    const { args, ranges } = next.value
    next = passes.next(ranges.map((r) => step(args, r.start, r.end)))
  }
  return next.value
}
