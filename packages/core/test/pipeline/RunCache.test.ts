import { describe, expect, it } from "vitest"
import { Effect, Fiber, Schema } from "effect"
import * as RunCache from "../../src/pipeline/RunCache.ts"
import * as Stage from "../../src/pipeline/Stage.ts"

const run = <A, E>(effect: Effect.Effect<A, E, RunCache.RunCache>, options?: { readonly maxBytes?: number }) =>
  Effect.runPromise(Effect.provide(effect, RunCache.layer(options)))

/** A computation that counts its runs and returns `value` after yielding, so callers overlap. */
const counted = <A>(value: A) => {
  const state = { runs: 0 }
  const compute = Effect.suspend(() => {
    state.runs++
    return Effect.as(Effect.sleep("5 millis"), value)
  })
  return { state, compute }
}

describe("RunCache", () => {
  it("runs one computation for concurrent callers of a key", async () => {
    const { state, compute } = counted("x")
    const values = await run(Effect.all(Array.from({ length: 5 }, () => RunCache.memo("k", compute)), { concurrency: "unbounded" }))
    expect(values).toEqual(["x", "x", "x", "x", "x"])
    expect(state.runs).toBe(1)
  })

  it("keeps values across calls of one run, and keys apart", async () => {
    const { state, compute } = counted(1)
    await run(Effect.gen(function* () {
      yield* RunCache.memo("a", compute)
      yield* RunCache.memo("a", compute)
      yield* RunCache.memo("b", compute)
    }))
    expect(state.runs).toBe(2)
  })

  it("does not keep a failure: the next caller computes again", async () => {
    let runs = 0
    const flaky = Effect.suspend(() => ++runs === 1 ? Effect.fail("boom" as const) : Effect.succeed("ok"))
    const [first, second, third] = await run(Effect.gen(function* () {
      const first = yield* Effect.flip(RunCache.memo("k", flaky))
      const second = yield* RunCache.memo("k", flaky)
      const third = yield* RunCache.memo("k", flaky)
      return [first, second, third] as const
    }))
    expect([first, second, third]).toEqual(["boom", "ok", "ok"])
    expect(runs).toBe(2)
  })

  it("gives concurrent waiters the failure of the shared computation", async () => {
    let runs = 0
    const failing = Effect.suspend(() => {
      runs++
      return Effect.flatMap(Effect.sleep("5 millis"), () => Effect.fail("boom" as const))
    })
    const errors = await run(Effect.all([Effect.flip(RunCache.memo("k", failing)), Effect.flip(RunCache.memo("k", failing))], { concurrency: "unbounded" }))
    expect(errors).toEqual(["boom", "boom"])
    expect(runs).toBe(1)
  })

  it("lets a waiter compute when the first caller is interrupted", async () => {
    const { state, compute } = counted("v")
    const value = await run(Effect.gen(function* () {
      const first = yield* Effect.forkChild(RunCache.memo("k", compute))
      yield* Effect.yieldNow
      const second = yield* Effect.forkChild(RunCache.memo("k", compute))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(first)
      return yield* Fiber.join(second)
    }))
    expect(value).toBe("v")
    expect(state.runs).toBe(2)
  })

  it("evicts the least recently used entries by their bytes", async () => {
    const runs: Array<string> = []
    const value = (key: string) => RunCache.memo(key, Effect.sync(() => (runs.push(key), key)), { bytes: () => 40 })
    await run(Effect.gen(function* () {
      yield* value("a")
      yield* value("b")
      yield* value("a") // a is now the most recent: c evicts b
      yield* value("c")
      yield* value("a")
      yield* value("b")
    }), { maxBytes: 100 })
    expect(runs).toEqual(["a", "b", "c", "b"])
  })

  it("keeps nothing bigger than the bound", async () => {
    let runs = 0
    const big = RunCache.memo("big", Effect.sync(() => ++runs), { bytes: () => 200 })
    await run(Effect.andThen(big, big), { maxBytes: 100 })
    expect(runs).toBe(2)
  })

  it("computes every time without a provider", async () => {
    const { state, compute } = counted(1)
    await Effect.runPromise(Effect.andThen(RunCache.memo("k", compute), RunCache.memo("k", compute)))
    expect(state.runs).toBe(2)
  })

  it("gives each run its own memo", async () => {
    const { state, compute } = counted(1)
    await run(RunCache.memo("k", compute))
    await run(RunCache.memo("k", compute))
    expect(state.runs).toBe(2)
  })
})

describe("Stage defaults and reads", () => {
  const Kind = Stage.define({
    kind: "test/reads",
    version: 1,
    description: "reads a file",
    params: Schema.Struct({ path: Schema.String, seed: Schema.Int.pipe(Stage.withDefault(0)) }),
    inputs: {},
    output: { name: "model" } as never,
    reads: (params) => [{ file: params.path }],
    run: () => Effect.die("not run")
  })

  it("decodes an omitted param and its explicit default to equal params", () => {
    const decode = Schema.decodeUnknownSync(Kind.params)
    expect(decode({ path: "a" })).toEqual(decode({ path: "a", seed: 0 }))
    expect(decode({ path: "a", seed: undefined })).toEqual({ path: "a", seed: 0 })
  })

  it("readsOf gives the kind's reads, or none", () => {
    expect(Stage.readsOf(Kind, { path: "m.safetensors", seed: 0 })).toEqual([{ file: "m.safetensors" }])
    expect(Stage.readsOf({ reads: undefined }, {})).toEqual([])
  })
})
