/**
 * The end of a run's telemetry: every signal's exporter is shut down at once (a shutdown exports
 * what is still buffered) and all of them are awaited together for at most one deadline. Awaited
 * one after the other, each with its own bound, an unreachable collector cost the sum — 13 to
 * 15 s at the end of a 0.3 s run.
 *
 * @since 0.1.0
 */
import type { Signal } from "./Config.ts"

/** How one signal's shutdown ended. @category models */
export type Outcome =
  | { readonly signal: Signal; readonly result: "done" }
  | { readonly signal: Signal; readonly result: "failed"; readonly error: unknown }
  | { readonly signal: Signal; readonly result: "timed out"; readonly afterMillis: number }

/** @category models */
export interface Shutdown {
  /** Adds what shuts one signal's exporter down. Parts added after `run` has started are not awaited. */
  readonly add: (signal: Signal, shutdown: () => Promise<void>) => void
  /**
   * Starts every part's shutdown on the first call (later calls join it) and resolves once all
   * have ended or the deadline has passed, with each part's outcome. Never rejects; a part still
   * running at the deadline goes on in the background.
   */
  readonly run: () => Promise<ReadonlyArray<Outcome>>
}

/** A shutdown whose parts get `timeoutMillis` in all. @category constructors */
export const make = (timeoutMillis: number): Shutdown => {
  const parts: Array<{ readonly signal: Signal; readonly shutdown: () => Promise<void> }> = []
  let running: Promise<ReadonlyArray<Outcome>> | undefined
  return {
    add: (signal, shutdown) => {
      parts.push({ signal, shutdown })
    },
    run: () => (running ??= all([...parts], timeoutMillis))
  }
}

const all = (
  parts: ReadonlyArray<{ readonly signal: Signal; readonly shutdown: () => Promise<void> }>,
  timeoutMillis: number
): Promise<ReadonlyArray<Outcome>> =>
  new Promise((resolve) => {
    const outcomes: Array<Outcome | undefined> = parts.map(() => undefined)
    const finish = () => {
      clearTimeout(timer)
      resolve(parts.map((part, i) => outcomes[i] ?? { signal: part.signal, result: "timed out", afterMillis: timeoutMillis }))
    }
    const timer = setTimeout(finish, timeoutMillis)
    const settled = parts.map((part, i) =>
      Promise.resolve()
        .then(part.shutdown)
        .then(
          () => void (outcomes[i] ??= { signal: part.signal, result: "done" }),
          (error: unknown) => void (outcomes[i] ??= { signal: part.signal, result: "failed", error })
        )
    )
    void Promise.all(settled).then(finish)
  })
