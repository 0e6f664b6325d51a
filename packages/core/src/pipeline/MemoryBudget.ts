/**
 * The memory budget the scheduler enforces (`crucible run --memory-limit 2GB`): before a stage
 * materialises a tensor's working set (a merge reads its inputs and writes its output), it takes
 * that many bytes from the budget and gives them back when done, so concurrent stages never hold
 * more than the limit between them. Without a limit, taking is free.
 *
 * @since 0.1.0
 */
import { Context, Effect, Schema, Semaphore } from "effect"

/** One tensor's working set is larger than the whole budget: it could never run. @category errors */
export class MemoryExceeded extends Schema.TaggedError<MemoryExceeded>()("MemoryExceeded", {
  tensor: Schema.String,
  needed: Schema.Number,
  limit: Schema.Number
}) {
  override get message() {
    const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`
    return `tensor "${this.tensor}" needs ${mb(this.needed)} of working memory, more than the memory limit of ${mb(this.limit)}: raise --memory-limit`
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

/** A budget of `limit` bytes. @category constructors */
export const make = (limit: number): Effect.Effect<Budget> =>
  Effect.map(Semaphore.make(Math.max(1, Math.floor(limit / UNIT))), (semaphore) => ({
    limit,
    hold: (tensor, bytes, effect) => {
      const units = Math.max(1, Math.ceil(bytes / UNIT))
      return units * UNIT > limit + UNIT ? Effect.fail(new MemoryExceeded({ tensor, needed: bytes, limit })) : semaphore.withPermits(Math.min(units, Math.floor(limit / UNIT) || 1))(effect)
    }
  }))

/** Runs `effect` holding `bytes` of the current budget. */
export const hold = (tensor: string, bytes: number) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | MemoryExceeded, R> =>
  Effect.gen(function* () {
    const budget = yield* MemoryBudget
    return yield* budget.hold(tensor, bytes, effect)
  })
