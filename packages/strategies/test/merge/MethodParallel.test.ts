// A Method with a `parallel` form: large tensors merge on the stage's worker pool, small ones in
// the calling thread, and the output bytes and non-finite reports are those of `merge` alone.
import { DType, Model, TensorRef } from "@crucible/core"
import { Effect, Result, Schema } from "effect"
import { describe, expect, it } from "vitest"
import * as Parallel from "../../src/merge/kernels/Parallel.ts"
import * as Kernel from "../../src/merge/kernels/TaskArithmetic.ts"
import * as TaskStatistics from "../../src/merge/kernels/TaskStatistics.ts"
import * as Method from "../../src/merge/Method.ts"
import { MIN_ELEMENTS } from "../../src/merge/StagePool.ts"
import { ModelStock } from "../../src/merge/ModelStock.ts"
import { FisherMerge } from "../../src/merge/Statistics.ts"
import { Multislerp, Slerp } from "../../src/merge/Spherical.ts"
import { DareTies, Della, Ties } from "../../src/merge/TaskArithmetic.ts"
import { decodeParams } from "../decodeParams.ts"

const plan = (job: Method.Job) =>
  Kernel.plan({ weights: job.models.map(() => 1), ...Kernel.presets.ties, density: job.value("density") ?? 1 }, job.shape, job.models.length, job.name)

const ties = (onPool: Array<string> | undefined) =>
  Method.define({
    kind: "test/ties",
    description: "TIES, with or without a parallel form",
    base: "required",
    minModels: 1,
    rules: ["density"],
    fields: { unused: Schema.optional(Schema.Boolean) },
    merge: (job) => {
      const p = plan(job)
      if (Result.isFailure(p)) return Result.fail(p.failure)
      const out = new Float32Array(job.base!.length)
      Kernel.apply(TaskStatistics.prepare(p.success, job.base!, job.models), out, job.base!, job.models)
      return Result.succeed(out)
    },
    ...(onPool === undefined ? {} : {
      parallel: (pool, job, _params, out) => {
        onPool.push(job.name)
        return Effect.flatMap(Effect.fromResult(plan(job)), (p) => Parallel.taskArithmetic(pool, p, out, job.base!, job.models))
      }
    })
  })

const wave = (seed: number, n: number, around?: Float32Array) =>
  Float32Array.from({ length: n }, (_, i) => (around?.[i] ?? 0) + Math.sin(seed * 7919 + i * 0.013) * (around === undefined ? 1 : 0.05))

const SHAPES: Record<string, Array<number>> = { "layers.0.weight": [640, 520], "layers.0.bias": [640], "norm.weight": [1000, 300] }
const modelOf = (name: string, data: Record<string, Float32Array>) =>
  Model.make(name, [
    ...Object.entries(data).map(([t, v]) => TensorRef.fromBytes(t, "F32", SHAPES[t]!, DType.fromNumbers(v, "F32"))),
    TensorRef.fromBytes("steps", "I64", [], DType.fromNumbers([3], "I64"))
  ])

const base = Object.fromEntries(Object.entries(SHAPES).map(([t, s], k) => [t, wave(k, s.reduce((a, b) => a * b, 1))]))
const fineTunes = [1, 2, 3].map((m) => Object.fromEntries(Object.entries(base).map(([t, v], k) => [t, wave(10 * m + k, v.length, v)])))

const context = { id: "m", kind: "test/ties", resolvePath: (p: string) => p, runDir: "/nonexistent", cacheDir: "/nonexistent", dryRun: false }

/** Runs the stage and reads every output tensor in the writer's chunks. */
const mergeWith = (kind: ReturnType<typeof ties>, models: ReadonlyArray<Model.Model>) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const merged = yield* kind.run({ ...context, params: decodeParams(kind as never, { density: 0.3 }) as never, inputs: { base: modelOf("base", base), models } })
    const out: Record<string, Uint8Array> = {}
    for (const t of merged.tensors.values()) {
      const n = TensorRef.numel(t.shape)
      const parts: Array<Uint8Array> = []
      for (let start = 0; start < n; start += 100_000) parts.push(yield* t.read({ start, end: Math.min(n, start + 100_000) }))
      out[t.name] = Uint8Array.from(parts.flatMap((p) => Array.from(p)))
    }
    return out
  })))

describe("Method with a parallel form", () => {
  it("merges tensors of at least MIN_ELEMENTS on the pool with the bytes of the in-thread merge", async () => {
    const models = fineTunes.map((d, m) => modelOf(`ft${m}`, d))
    const onPool: Array<string> = []
    const pooled = await mergeWith(ties(onPool), models)
    const inThread = await mergeWith(ties(undefined), models)
    expect(onPool.sort()).toEqual(Object.keys(SHAPES).filter((t) => SHAPES[t]!.reduce((a, b) => a * b, 1) >= MIN_ELEMENTS).sort())
    expect(onPool.length).toBe(2)
    expect(Object.keys(pooled).sort()).toEqual([...Object.keys(SHAPES), "steps"].sort())
    for (const name of Object.keys(inThread)) expect(pooled[name]).toEqual(inThread[name])
  }, 60_000)

  it("merge/ties itself runs large tensors on the pool with the in-thread bytes, through read and readInto, for consumers that interleave", async () => {
    const models = fineTunes.map((d, m) => modelOf(`ft${m}`, d))
    const inThread = await mergeWith(ties(undefined), models)
    const interleaved = await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
      const merged = yield* Ties.run({ ...context, kind: "merge/ties", params: decodeParams(Ties, { density: 0.3 }) as never, inputs: { base: modelOf("base", base), models } })
      // Two pooled tensors pulled in turns: the first holds the reused output array while the
      // second is computed (it must get its own), then each is read to its end.
      const a = merged.tensors.get("layers.0.weight")!, b = merged.tensors.get("norm.weight")!
      const na = TensorRef.numel(a.shape), nb = TensorRef.numel(b.shape)
      const headA = new Uint8Array(1000 * 4)
      yield* TensorRef.readInto(a, { start: 0, end: 1000 }, headA)
      const wholeB = yield* b.read()
      const restA = new Uint8Array((na - 1000) * 4)
      yield* TensorRef.readInto(a, { start: 1000, end: na }, restA)
      // Then again in the writer's order (the reused array now serves both in turn).
      const againA = yield* a.read({ start: 0, end: na })
      const againB = new Uint8Array(nb * 4)
      yield* TensorRef.readInto(b, undefined, againB)
      return { a: Uint8Array.from([...headA, ...restA]), b: wholeB, againA, againB }
    })))
    expect(interleaved.a).toEqual(inThread["layers.0.weight"])
    expect(interleaved.b).toEqual(inThread["norm.weight"])
    expect(interleaved.againA).toEqual(inThread["layers.0.weight"])
    expect(interleaved.againB).toEqual(inThread["norm.weight"])
  }, 60_000)

  it("reports a non-finite input found on the pool as the in-thread check does", async () => {
    const broken = fineTunes.map((d) => ({ ...d, "layers.0.weight": d["layers.0.weight"]!.slice() }))
    broken[1]!["layers.0.weight"]![4321] = Number.NaN
    broken[1]!["layers.0.weight"]![9999] = Number.POSITIVE_INFINITY
    const models = broken.map((d, m) => modelOf(`ft${m}`, d))
    const failure = (kind: ReturnType<typeof ties>) => mergeWith(kind, models).then(() => undefined, (e: unknown) => e)
    const pooled = await failure(ties([]))
    const inThread = await failure(ties(undefined))
    expect(String(pooled)).toContain("2 non-finite values in the input (first: NaN at element 4321)")
    expect(String(pooled)).toBe(String(inThread))
  }, 60_000)

  // Every built-in kind with a pool form, run once in the calling thread (CRUCIBLE_MERGE_THREADS=1)
  // and once on the pool: the same bytes for every tensor.
  const kinds = [
    ["merge/ties", Ties, { density: 0.3 }, true],
    ["merge/dare-ties", DareTies, { density: 0.4, seed: 3 }, true],
    ["merge/della", Della, { density: 0.5, epsilon: 0.1 }, true],
    ["merge/slerp", Slerp, { t: 0.3 }, false],
    ["merge/slerp with a base", Slerp, { t: [0.2, 0.8] }, true],
    ["merge/multislerp", Multislerp, { weights: [1, 2, 3] }, true],
    ["merge/model-stock", ModelStock, {}, true],
    ["merge/model-stock filter_wise", ModelStock, { filter_wise: true }, true]
  ] as const
  for (const [label, kind, params, withBase] of kinds) {
    it(`${label}: the pool and one thread give the same bytes`, async () => {
      const models = fineTunes.map((d, m) => modelOf(`ft${m}`, d)).slice(0, label.startsWith("merge/slerp") ? 2 : 3)
      const run = (threads: string) =>
        Effect.runPromise(Effect.scoped(Effect.gen(function* () {
          process.env.CRUCIBLE_MERGE_THREADS = threads
          // Typed as a kind with an optional base, so one call covers the presets that require one.
          const merged = yield* (kind as typeof Slerp).run({ ...context, kind: label, params: decodeParams(kind as never, params as never) as never, inputs: { base: withBase ? modelOf("base", base) : undefined, models } })
          const out: Record<string, Uint8Array> = {}
          for (const t of merged.tensors.values()) out[t.name] = yield* t.read()
          return out
        }))).finally(() => delete process.env.CRUCIBLE_MERGE_THREADS)
      const one = await run("1")
      const pooled = await run("2")
      expect(Object.keys(pooled).sort()).toEqual(Object.keys(one).sort())
      for (const name of Object.keys(one)) expect(pooled[name], name).toEqual(one[name])
    }, 60_000)
  }

  it("merge/fisher: the pool and one thread give the same bytes, for tensors with Fisher statistics and without (the weighted average)", async () => {
    const models = fineTunes.map((d, m) => modelOf(`ft${m}`, d))
    // Fisher diagonals: positive, of each parameter's shape, some below epsilon; none for
    // norm.weight (a large tensor), which is then the weighted average.
    const fishers = fineTunes.map((d, m) => modelOf(`fisher${m}`, Object.fromEntries(Object.entries(d).filter(([t]) => t !== "norm.weight").map(([t, v]) => [t, v.map((x, i) => (i % 17 === 0 ? 0 : Math.abs(x) * (m + 1)))]))))
    const run = (threads: string, statistics: ReadonlyArray<Model.Model>) =>
      Effect.runPromise(Effect.scoped(Effect.gen(function* () {
        process.env.CRUCIBLE_MERGE_THREADS = threads
        const merged = yield* FisherMerge.run({ ...context, kind: "merge/fisher", params: decodeParams(FisherMerge, { weights: [1, 2, 1], epsilon: 1e-6 }) as never, inputs: { models, statistics } })
        const out: Record<string, Uint8Array> = {}
        for (const t of merged.tensors.values()) out[t.name] = yield* t.read()
        return out
      }))).finally(() => delete process.env.CRUCIBLE_MERGE_THREADS)
    const one = await run("1", fishers)
    const pooled = await run("2", fishers)
    expect(Object.keys(pooled).sort()).toEqual(Object.keys(one).sort())
    for (const name of Object.keys(one)) expect(pooled[name], name).toEqual(one[name])
  }, 60_000)
})
