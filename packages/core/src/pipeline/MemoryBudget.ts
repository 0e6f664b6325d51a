/**
 * The memory budget the scheduler enforces (`crucible run --memory-limit 2GB`): before a stage
 * materialises a tensor's working set (a merge reads its inputs and writes its output), it takes
 * that many bytes from the budget and gives them back when done, so concurrent stages never hold
 * more than the limit between them. Without a limit, taking is free.
 *
 * @since 0.1.0
 */
import { Context, Effect, Option, Schema, Semaphore } from "effect"

/**
 * A tensor's working set cannot be had: larger than the whole budget, or — for a tensor computed
 * while its reader holds memory (a merge of a merge) — larger than what the reader leaves, or not
 * free right then because other stages hold the rest. @category errors
 */
export class MemoryExceeded extends Schema.TaggedError<MemoryExceeded>()("MemoryExceeded", {
  tensor: Schema.String,
  needed: Schema.Number,
  limit: Schema.Number,
  /** Bytes its readers (the stages pulling this tensor) hold while it is computed. */
  heldByReaders: Schema.optional(Schema.Number),
  /** The rest was free in principle but held by other stages at that moment. */
  contended: Schema.optional(Schema.Boolean)
}) {
  override get message() {
    const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`
    const needs = `tensor "${this.tensor}" needs ${mb(this.needed)} of working memory`
    if (this.heldByReaders === undefined) return `${needs}, more than the memory limit of ${mb(this.limit)}: raise --memory-limit`
    const while_ = `while the stage reading it holds ${mb(this.heldByReaders)} of the ${mb(this.limit)} limit`
    return this.contended === true
      ? `${needs} ${while_}, and other stages hold the rest: raise --memory-limit or run with --concurrency 1`
      : `${needs} ${while_}: both cannot fit; raise --memory-limit`
  }
}

/** @category models */
export interface Budget {
  readonly limit: number | undefined
  /** Runs `effect` holding `bytes` of the budget. */
  readonly hold: <A, E, R>(tensor: string, bytes: number, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | MemoryExceeded, R>
}

/** Permits are whole mebibytes: a semaphore of bytes would overflow nothing but count needlessly. */
const UNIT = 1024 * 1024

/** The budget stages use; the default is unlimited. @category services */
export const MemoryBudget = Context.Reference<Budget>("crucible/MemoryBudget", {
  defaultValue: () => ({ limit: undefined, hold: (_tensor, _bytes, effect) => effect })
})

/**
 * Bytes held by the holds this effect runs inside. A lazy tensor is computed while its reader
 * holds its own working set (merge/linear of a TIES output: the linear chunk is held while the
 * TIES tensor is computed), and the reader gives nothing back until the read returns: waiting
 * there could wait forever (measured: a run hung). Such nested holds never wait; they take what
 * is free at once or fail with {@link MemoryExceeded}.
 */
const Held = Context.Reference<number>("crucible/MemoryBudget/held", { defaultValue: () => 0 })

/** A budget of `limit` bytes. @category constructors */
export const make = (limit: number): Effect.Effect<Budget> =>
  Effect.map(Semaphore.make(Math.max(1, Math.floor(limit / UNIT))), (semaphore) => ({
    limit,
    hold: (tensor, bytes, effect) =>
      Effect.gen(function* () {
        const units = Math.max(1, Math.ceil(bytes / UNIT))
        if (units * UNIT > limit + UNIT) return yield* new MemoryExceeded({ tensor, needed: bytes, limit })
        const permits = Math.min(units, Math.floor(limit / UNIT) || 1)
        const held = yield* Held
        const inside = Effect.provideService(effect, Held, held + bytes)
        if (held === 0) return yield* semaphore.withPermits(permits)(inside)
        if (held + bytes > limit + UNIT) return yield* new MemoryExceeded({ tensor, needed: bytes, limit, heldByReaders: held })
        const ran = yield* semaphore.withPermitsIfAvailable(permits)(inside)
        if (Option.isNone(ran)) return yield* new MemoryExceeded({ tensor, needed: bytes, limit, heldByReaders: held, contended: true })
        return ran.value
      })
  }))

/** Runs `effect` holding `bytes` of the current budget. */
export const hold = (tensor: string, bytes: number) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | MemoryExceeded, R> =>
  Effect.gen(function* () {
    const budget = yield* MemoryBudget
    return yield* budget.hold(tensor, bytes, effect)
  })
