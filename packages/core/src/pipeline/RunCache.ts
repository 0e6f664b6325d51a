/**
 * A memo for the values stages derive from what they read (a parsed dataset, a teacher's
 * outputs), scoped to one run: several stages reading MNIST parse it once, and the next run
 * reads the files again (their contents may have changed in between, which is why nothing is
 * kept for the process). It is bounded: entries declare their size (`bytes`) and the least
 * recently used are dropped past `maxBytes`. Concurrent callers of one key share one
 * computation; a failure (or an interruption) is not kept, so the next caller computes again.
 *
 * The runner provides `layer()` once per run. Without it `memo` runs the computation every time,
 * so a stage behaves the same with or without the cache.
 *
 * ```ts
 * const dataset = yield* RunCache.memo(`csv:${file}`, Csv.read(file), { bytes: (d) => d.x.byteLength + d.y.byteLength })
 * ```
 *
 * @since 0.1.0
 */
import { Cause, Context, Deferred, Effect, Exit, Layer, Option } from "effect"

/** Options of one memoised value. @category models */
export interface MemoOptions<A> {
  /** The value's size, counted against `maxBytes` (default 0: kept until the run ends). */
  readonly bytes?: (a: A) => number
}

/** @category models */
export interface Shape {
  /** The value of `key`: computed once by the first caller, shared with the others. */
  readonly memo: <A, E, R>(key: string, compute: Effect.Effect<A, E, R>, options?: MemoOptions<A>) => Effect.Effect<A, E, R>
}

/**
 * The run's memo. `layer()` gives each run its own.
 *
 * @category services
 */
export class RunCache extends Context.Service<RunCache, Shape>()("crucible/RunCache") {}

/** The default bound of a run's memo: 1 GiB. */
export const DEFAULT_MAX_BYTES = 1024 ** 3

/** What waiters of a pending entry receive: the computation's exit, or `retry` when it was interrupted. */
type Settled = { readonly _tag: "done"; readonly exit: Exit.Exit<unknown, unknown> } | { readonly _tag: "retry" }

interface Entry {
  readonly deferred: Deferred.Deferred<Settled>
  /** Undefined while the value is being computed (such an entry is never evicted). */
  bytes: number | undefined
  value: unknown
}

/**
 * A memo bounded by `maxBytes` (default 1 GiB), evicting least recently used entries by their bytes.
 *
 * @category constructors
 */
export const make = (options?: { readonly maxBytes?: number }): Shape => {
  const maxBytes = options?.maxBytes ?? DEFAULT_MAX_BYTES
  // A Map iterates in insertion order: an entry is moved to the end when used, so the first is the least recent.
  const entries = new Map<string, Entry>()
  let total = 0

  const touch = (key: string, entry: Entry) => {
    entries.delete(key)
    entries.set(key, entry)
  }

  const evict = () => {
    for (const [key, entry] of entries) {
      if (total <= maxBytes) return
      if (entry.bytes === undefined) continue
      entries.delete(key)
      total -= entry.bytes
    }
  }

  const settle = (key: string, entry: Entry, exit: Exit.Exit<unknown, unknown>, bytes: (a: never) => number) => {
    if (Exit.isSuccess(exit)) {
      if (entries.get(key) === entry) {
        entry.bytes = Math.max(0, bytes(exit.value as never))
        entry.value = exit.value
        total += entry.bytes
        evict()
      }
      return Deferred.doneUnsafe(entry.deferred, Exit.succeed({ _tag: "done", exit }))
    }
    if (entries.get(key) === entry) entries.delete(key)
    // An interrupted computation is nobody's answer: its waiters start again.
    const interrupted = Cause.hasInterruptsOnly(exit.cause)
    return Deferred.doneUnsafe(entry.deferred, Exit.succeed(interrupted ? { _tag: "retry" } : { _tag: "done", exit }))
  }

  const memo = <A, E, R>(key: string, compute: Effect.Effect<A, E, R>, options?: MemoOptions<A>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      const found = entries.get(key)
      if (found !== undefined) {
        touch(key, found)
        if (found.bytes !== undefined) return Effect.succeed(found.value as A)
        return Effect.flatMap(Deferred.await(found.deferred), (settled) =>
          settled._tag === "retry" ? memo(key, compute, options) : (settled.exit as Exit.Exit<A, E>))
      }
      const entry: Entry = { deferred: Deferred.makeUnsafe<Settled>(), bytes: undefined, value: undefined }
      entries.set(key, entry)
      const bytes = (options?.bytes ?? (() => 0)) as (a: never) => number
      return Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(Effect.exit(restore(compute)), (exit) => {
          settle(key, entry, exit, bytes)
          return exit
        })
      )
    })

  return { memo }
}

/**
 * A fresh memo for one run (see `make`).
 *
 * @category layers
 */
export const layer = (options?: { readonly maxBytes?: number }): Layer.Layer<RunCache> => Layer.sync(RunCache, () => make(options))

/**
 * The value of `key` from the run's memo when one is provided, else `compute` run every time.
 *
 * @category combinators
 */
export const memo = <A, E, R>(key: string, compute: Effect.Effect<A, E, R>, options?: MemoOptions<A>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.serviceOption(RunCache), (cache) => Option.isSome(cache) ? cache.value.memo(key, compute, options) : compute)
