import { Effect, Exit, Layer, Result, Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Arena from "../../../src/merge/kernels/Arena.ts"
import * as Fisher from "../../../src/merge/kernels/Fisher.ts"
import * as Gram from "../../../src/merge/kernels/Gram.ts"
import * as ModelStock from "../../../src/merge/kernels/ModelStock.ts"
import * as Parallel from "../../../src/merge/kernels/Parallel.ts"
import * as Pool from "../../../src/merge/kernels/Pool.ts"
import * as Slerp from "../../../src/merge/kernels/Slerp.ts"
import * as TaskArithmetic from "../../../src/merge/kernels/TaskArithmetic.ts"
import * as TaskStatistics from "../../../src/merge/kernels/TaskStatistics.ts"
import { weightedSum } from "../../../src/merge/kernels/WeightedSum.ts"
import { copierInto, expectSameBits, family, normal, shared } from "./helpers.ts"

// Not a multiple of the block, several blocks per worker at 4 workers.
const SHAPE = [300, 1123] as const
const N = SHAPE[0] * SHAPE[1]
const TENSOR = "model.layers.7.self_attn.o_proj.weight"

const arena = Arena.make({ maxBytes: 64 * N * 4 })
const inArena = copierInto(arena)
const data = family(42, N, 3, 0.05)
const base = inArena(data.base)
const models = data.models.map(inArena)
const fishers = [1, 2, 3].map((s) => inArena(Float32Array.from(normal(s, N), (v) => v * v)))

// One pool per worker count for the whole file (starting workers is the slow part).
const scope = Effect.runSync(Scope.make())
const pools = new Map<number, Pool.Pool>()
const withPool = async <A, E>(workers: number, f: (pool: Pool.Pool) => Effect.Effect<A, E>): Promise<A> => {
  let pool = pools.get(workers)
  if (pool === undefined) {
    pool = await Effect.runPromise(Scope.provide(scope)(Pool.make({ workers, arena, inlineBelow: 0 })))
    pools.set(workers, pool)
  }
  return Effect.runPromise(f(pool))
}

/** The task-arithmetic presets both runs merge, each with its own parameters. */
const taskArithmeticPlans = ([
  ["ties", { density: 0.3 }],
  ["dare-ties", { density: 0.4, seed: 5 }],
  ["breadcrumbs-ties", { density: 0.5, gamma: 0.05 }],
  ["della", { density: 0.5, epsilon: 0.2, seed: 6 }],
  ["dare-linear", { density: 0.3, rescale: "l1" }]
] as const).map(([name, extra]) => [name, Result.getOrThrow(TaskArithmetic.plan({ weights: [1, 0.5, 0.25], ...TaskArithmetic.presets[name], ...extra }, SHAPE, 3, TENSOR))] as const)

/** Every merge the pool drives, on fresh outputs. */
const allMerges = (pool: Pool.Pool) =>
  Effect.gen(function* () {
    const outs: Record<string, Float32Array> = {}
    const fresh = (name: string) => (outs[name] = arena.alloc(N)!)
    yield* Parallel.weightedSum(pool, fresh("linear"), models, [0.2, 0.3, 0.5])
    for (const [name, plan] of taskArithmeticPlans) yield* Parallel.taskArithmetic(pool, plan, fresh(name), base, models)
    yield* Parallel.slerp(pool, { t: 0.3 }, fresh("slerp"), models[0]!, models[1]!, base, TENSOR)
    yield* Parallel.multislerp(pool, { weights: [1, 2, 3] }, fresh("multislerp"), models, base, TENSOR)
    yield* Parallel.modelStock(pool, { filterWise: true }, SHAPE, fresh("model-stock"), base, models, TENSOR)
    yield* Parallel.fisher(pool, Result.getOrThrow(Fisher.plan({}, models, fishers, TENSOR)), fresh("fisher"), models, fishers)
    return outs
  })

/** The same merges single-threaded, without the pool. */
const singleThreaded = (): Record<string, Float32Array> => {
  const outs: Record<string, Float32Array> = {}
  const fresh = (name: string) => (outs[name] = new Float32Array(N))
  weightedSum(fresh("linear"), models, [0.2, 0.3, 0.5])
  for (const [name, plan] of taskArithmeticPlans) TaskArithmetic.apply(TaskStatistics.prepare(plan, base, models), fresh(name), base, models)
  const slerpPlan = Result.getOrThrow(Slerp.plan({ t: 0.3 }, Slerp.statistics(models[0]!, models[1]!, base), true, TENSOR))
  Slerp.apply(slerpPlan, fresh("slerp"), models[0]!, models[1]!, base)
  const rowLength = ModelStock.rowLength(SHAPE, { filterWise: true })
  const msPlan = Result.getOrThrow(ModelStock.plan(ModelStock.statistics(models, base, rowLength), 3, rowLength, TENSOR))
  ModelStock.apply(msPlan, fresh("model-stock"), base, models)
  Fisher.apply(Result.getOrThrow(Fisher.plan({}, models, fishers, TENSOR)), fresh("fisher"), models, fishers)
  return outs
}

describe("worker pool", () => {
  let results: Array<Record<string, Float32Array>> = []
  beforeAll(async () => {
    for (const workers of [1, 2, 4]) results.push(await withPool(workers, allMerges))
  })
  afterAll(async () => {
    results = []
    await Effect.runPromise(Scope.close(scope, Exit.void))
  })

  it("gives identical bytes for 1, 2 and 4 workers, for every method", () => {
    expect(Object.keys(results[0]!).length).toBe(10)
    for (const name of Object.keys(results[0]!)) {
      expectSameBits(results[1]![name]!, results[0]![name]!)
      expectSameBits(results[2]![name]!, results[0]![name]!)
    }
  })

  it("gives the single-threaded kernels' bytes", () => {
    const single = singleThreaded()
    for (const name of Object.keys(single)) expectSameBits(results[2]![name]!, single[name]!)
  })

  it("splits on block boundaries, one range per worker, evenly", async () => {
    const ranges = await withPool(4, (pool) => Effect.succeed(pool.split(N)))
    expect(ranges.length).toBe(4)
    expect(ranges[0]!.start).toBe(0)
    expect(ranges.at(-1)!.end).toBe(N)
    for (const [i, r] of ranges.entries()) {
      expect(r.start % Gram.BLOCK).toBe(0)
      if (i > 0) expect(r.start).toBe(ranges[i - 1]!.end)
    }
    expect(Pool.split(10, 4, 4)).toEqual([{ start: 0, end: 4 }, { start: 4, end: 8 }, { start: 8, end: 10 }])
    expect(Pool.split(0, 4)).toEqual([{ start: 0, end: 0 }])
  })

  it("works on plain SharedArrayBuffers too (no SIMD), with the same bytes", async () => {
    const x = models.map((m) => shared(Float32Array.from(m)))
    const out = shared(new Float32Array(N))
    await withPool(2, (pool) => Parallel.weightedSum(pool, out, x, [0.2, 0.3, 0.5]))
    expectSameBits(out, results[0]!["linear"]!)
  })

  it("finds non-finite values on all workers", async () => {
    const x = shared(Float32Array.from(models[0]!))
    x[N - 10] = Number.NaN
    x[N - 5] = Number.NEGATIVE_INFINITY
    const report = await withPool(2, (pool) => Parallel.findNonFinite(pool, [{ tensor: "clean", values: base }, { tensor: "dirty", values: x }]))
    expect(report).toMatchObject({ tensor: "dirty", index: N - 10, count: 2 })
  })

  it("is also a service with a layer", async () => {
    const out = arena.alloc(N)!
    await Effect.runPromise(Effect.provide(
      Pool.KernelPool.use((pool) => Parallel.weightedSum(pool, out, models, [0.2, 0.3, 0.5])),
      Pool.KernelPool.layer({ workers: 2, arena, inlineBelow: 0 })
    ))
    expectSameBits(out, results[0]!["linear"]!)
    expect(Layer.isLayer(Pool.KernelPool.layer({ workers: 1 }))).toBe(true)
  })

  it("refuses arrays outside shared memory, and reports a failing op as PoolError", async () => {
    const plain = new Float32Array(N)
    const refused = await withPool(1, (pool) => Effect.flip(Parallel.weightedSum(pool, plain, models, [1, 1, 1])))
    expect(refused._tag).toBe("PoolError")
    expect(refused.message).toContain('"out"')
    const prepared = { ...TaskStatistics.prepare(Result.getOrThrow(TaskArithmetic.plan({ weights: [1, 1, 1], ...TaskArithmetic.presets.ties, density: 0.5 }, SHAPE, 3, TENSOR)), base, models), selectors: [] }
    const failed = await withPool(1, (pool) => Effect.flip(pool.run("taskArithmetic", { prepared, out: arena.alloc(N)!, base, models, offset: 0 }, pool.split(N))))
    expect(failed._tag).toBe("PoolError")
    expect(failed.op).toBe("taskArithmetic")
  })
})
