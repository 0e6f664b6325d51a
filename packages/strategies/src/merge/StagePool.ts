/**
 * The worker pool of one merge stage (`kernels/Pool.ts`), started when the first tensor large
 * enough to pay for it is merged and stopped when the stage's scope closes. A stage that merges
 * only small tensors never starts threads, and a machine with one core gets none. If the workers
 * cannot start, the merge runs in the calling thread (the kernels give the same bytes).
 *
 * @since 0.1.0
 */
import { Effect, Exit, Scope } from "effect"
import { availableParallelism } from "node:os"
import type { Arena } from "./kernels/Arena.ts"
import * as Pool from "./kernels/Pool.ts"

/** Tensors with fewer elements merge in the calling thread: a pool round trip costs more. @category constants */
export const MIN_ELEMENTS = 1 << 18

/** @category models */
export interface StagePool {
  /** Whether this stage would use workers at all (more than one core). */
  readonly enabled: boolean
  /** The pool for a tensor of `elements`, or undefined to merge it in the calling thread. */
  readonly forTensor: (elements: number) => Effect.Effect<Pool.Pool | undefined>
}

/**
 * Threads a merge stage uses: `CRUCIBLE_MERGE_THREADS` when set to a positive integer (1 merges in
 * the calling thread, as `OMP_NUM_THREADS=1` does for PyTorch), else the cores available.
 *
 * @category constants
 */
export const defaultWorkers = (): number => chosenThreads() ?? availableParallelism()

/** `CRUCIBLE_MERGE_THREADS` when it is a positive integer. */
const chosenThreads = (): number | undefined => {
  const wanted = Number(process.env.CRUCIBLE_MERGE_THREADS)
  return Number.isInteger(wanted) && wanted >= 1 ? wanted : undefined
}

/**
 * Threads `merge/linear`'s streamed sum (`StreamSum.ts`) uses: `CRUCIBLE_MERGE_THREADS` when set,
 * else one fewer than the cores. A weighted sum costs about a nanosecond an element, less than
 * handing its range to a worker and back; what keeps cores busy in a streamed merge is the rest
 * of the run — the calling thread issuing the reads and writes, libuv's threads copying them, the
 * output's sha256 on its own thread. So the calling thread sums, and workers join only on cores
 * beyond those: on 2 cores, none (measured, 3 × 1.33 GB bf16 page-cached to tmpfs, rerun: 2.6 s
 * summing in the calling thread against 3.0 s with two workers, and 2.7–2.9 s with one worker taking
 * half of each chunk beside it; bench/bigmerge/README.md).
 *
 * @category constants
 */
export const streamWorkers = (): number => chosenThreads() ?? Math.max(1, availableParallelism() - 1)

/**
 * A pool of `workers` threads (default: {@link defaultWorkers}) in `scope`; with `arena`, the
 * workers map it, so its arrays get their SIMD kernels (`merge/linear`'s stream).
 *
 * @category constructors
 */
export const make = (scope: Scope.Scope, workers = defaultWorkers(), arena?: Arena): StagePool => {
  const enabled = workers > 1
  let started: Promise<Pool.Pool | undefined> | undefined
  const start = (): Promise<Pool.Pool | undefined> =>
    Effect.runPromise(Effect.gen(function* () {
      const own = yield* Scope.fork(scope)
      const exit = yield* Effect.exit(Scope.provide(own)(Pool.make({ workers, inlineBelow: 0, ...(arena === undefined ? {} : { arena }) })))
      if (Exit.isSuccess(exit)) return exit.value
      yield* Scope.close(own, Exit.void)
      return undefined
    }))
  return {
    enabled,
    forTensor: (elements) =>
      !enabled || elements < MIN_ELEMENTS ? Effect.succeed(undefined) : Effect.promise(() => (started ??= start()))
  }
}
