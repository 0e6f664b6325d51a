// NuSLERP, Karcher, SCE, NearSwap and Arcee Fusion on a worker pool: for 1, 2 and 4 workers the
// bytes (NaN as NaN) and diagnostics of the single-threaded kernels, on tensors of a few blocks
// that are not a multiple of the block; and the pooled result against the float64 references.
import { Effect, Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as ArceeFusion from "../../../src/merge/kernels/ArceeFusion.ts"
import { BLOCK } from "../../../src/merge/kernels/Gram.ts"
import * as Karcher from "../../../src/merge/kernels/Karcher.ts"
import * as NearSwap from "../../../src/merge/kernels/NearSwap.ts"
import * as NuSlerp from "../../../src/merge/kernels/NuSlerp.ts"
import * as Parallel from "../../../src/merge/kernels/Parallel.ts"
import * as Pool from "../../../src/merge/kernels/Pool.ts"
import * as Sce from "../../../src/merge/kernels/Sce.ts"
import * as Ref from "../mergekitReferences.ts"
import { family, normal, shared } from "./helpers.ts"

// 3 whole blocks and a partial one: every worker count splits it differently.
const SHAPE = [401, 501] as const
const N = SHAPE[0] * SHAPE[1]
const WORKERS = [1, 2, 4] as const

// Task vectors quantised to 1/64, so that SCE's variances tie at the cut and Arcee's importances repeat.
const quantised = (seed: number, count: number) => {
  const { base, models } = family(seed, N, count, 0.05)
  return { base, models: models.map((m) => Float32Array.from(m, (v, j) => base[j]! + Math.round((v - base[j]!) * 64) / 64)) }
}
const withNaN = (x: Float32Array, at: ReadonlyArray<number>) => {
  const y = x.slice()
  for (const j of at) y[j] = Number.NaN
  return y
}

const scope = Effect.runSync(Scope.make())
afterAll(() => Effect.runPromise(Scope.close(scope, Effect.void as never)))
// One pool per worker count for the whole file, started together (starting workers is the slow part).
const pools = new Map<number, Pool.Pool>()
beforeAll(async () => {
  const started = await Promise.all(WORKERS.map((workers) => Effect.runPromise(Scope.provide(scope)(Pool.make({ workers, inlineBelow: 0 })))))
  started.forEach((pool, i) => pools.set(WORKERS[i]!, pool))
}, 60_000)
const onPool = <A>(workers: number, f: (pool: Pool.Pool) => Effect.Effect<A, unknown>): Promise<A> => Effect.runPromise(f(pools.get(workers)!))

/**
 * The same float32 values: equal bits, or NaN on both sides (a NaN's payload may change when a
 * NaN coefficient is posted to a worker: structured cloning canonicalises it).
 */
const expectSameBits = (a: Float32Array, b: Float32Array): void => {
  expect(a.length).toBe(b.length)
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length)
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length)
  for (let j = 0; j < ua.length; j++) {
    if (ua[j] !== ub[j] && !(Number.isNaN(a[j]) && Number.isNaN(b[j]))) expect.fail(`element ${j} differs: ${a[j]} vs ${b[j]}`)
  }
}
const output = () => new Float32Array(new SharedArrayBuffer(N * 4))

/** The float64 reference within float32 rounding, except at most `flips` entries (selections at a boundary). */
const expectNear = (got: Float32Array, want: ArrayLike<number>, flips = 0) => {
  let off = 0
  for (let j = 0; j < N; j++) if (!(Math.abs(got[j]! - want[j]!) <= 1e-6 + 1e-6 * Math.abs(want[j]!))) off++
  expect(off).toBeLessThanOrEqual(flips)
}

describe("pool forms of the methods without one before", () => {
  it("the test tensor spans blocks and is not a multiple of one", () => {
    expect(N % BLOCK).not.toBe(0)
    expect(Math.ceil(N / BLOCK)).toBe(4)
  })

  it("nearswap: the same bytes on 1, 2 and 4 workers", async () => {
    const { base, models } = family(1, N, 1, 0.05)
    const model = withNaN(models[0]!, [5, N - 1])
    const want = new Float32Array(N)
    NearSwap.apply(0.03, want, base, model)
    for (const w of WORKERS) {
      const out = output()
      await onPool(w, (pool) => Parallel.nearSwap(pool, 0.03, out, shared(base), shared(model)))
      expectSameBits(out, want)
    }
    expectNear(want, Ref.nearswap(Array.from(models[0]!), Array.from(base), 0.03).map((v, j) => (j === 5 || j === N - 1 ? Number.NaN : v)), 2)
  })

  for (const [label, params, withBase] of [
    ["flat, with a base", { flatten: true, rowWise: false }, true],
    ["flat", { flatten: true, rowWise: false }, false],
    ["rows", { flatten: false, rowWise: false }, true],
    ["columns", { flatten: false, rowWise: true }, false]
  ] as const) {
    it(`nuslerp (${label}): the same bytes on 1, 2 and 4 workers; the float64 reference`, async () => {
      const { base, models } = family(2, N, 2, 0.3)
      const [a, b] = [withNaN(models[0]!, [777]), models[1]!]
      const origin = withBase ? base : undefined
      const p = { t: 0.3, ...params }
      const want = new Float32Array(N)
      NuSlerp.apply(p, SHAPE, want, a, b, origin)
      for (const w of WORKERS) {
        const out = output()
        await onPool(w, (pool) => Parallel.nuSlerp(pool, p, SHAPE, out, shared(a), shared(b), origin && shared(origin)))
        expectSameBits(out, want)
      }
      const clean = new Float32Array(N)
      NuSlerp.apply(p, SHAPE, clean, models[0]!, b, origin)
      expectNear(clean, Ref.nuslerp(SHAPE, [Array.from(models[0]!), Array.from(b)], origin && Array.from(origin), [0.7, 0.3], params.rowWise, params.flatten))
    })
  }

  it("karcher: the same bytes and iterations on 1, 2 and 4 workers; the float64 reference", async () => {
    const models = [1, 2, 3].map((s) => normal(30 + s, N, s))
    const p = { maxIter: 10, tol: 1e-9 }
    const want = Karcher.apply(p, models)
    expect(want.iterations).toBeGreaterThan(2)
    for (const w of WORKERS) {
      const out = output()
      const done = await onPool(w, (pool) => Parallel.karcher(pool, p, models.map(shared), out))
      expectSameBits(out, want.out)
      expect(done).toEqual({ iterations: want.iterations, converged: want.converged })
    }
    // Three steps against the (slow, array-based) float64 reference.
    expectNear(Karcher.apply({ ...p, maxIter: 3 }, models).out, Ref.karcher(models.map((m) => Array.from(m)), 3, 1e-9))
    // A NaN model: its norm is NaN, so it takes no part in the direction but makes the scale NaN.
    const broken = [withNaN(models[0]!, [N - 3]), models[1]!]
    const nan = Karcher.apply(p, broken)
    const out = output()
    await onPool(2, (pool) => Parallel.karcher(pool, p, broken.map(shared), out))
    expectSameBits(out, nan.out)
  })

  for (const topk of [0.3, 0.5, 1]) {
    it(`sce (select_topk ${topk}): the same bytes, kept and weights on 1, 2 and 4 workers; the float64 reference`, async () => {
      const { base, models } = quantised(3, 3)
      const want = Sce.apply(topk, base, models)
      for (const w of WORKERS) {
        const out = output()
        const done = await onPool(w, (pool) => Parallel.sce(pool, topk, shared(base), models.map(shared), out))
        expectSameBits(out, want.out)
        expect(done).toEqual({ kept: want.kept, weights: want.weights })
      }
      // Ties at the cut: the reference's own order among them is unspecified, so compare where the variance is not the cut.
      if (topk === 1) expectNear(want.out, Ref.sce(models.map((m) => Array.from(m)), Array.from(base), topk))
    })
  }

  it("sce: the cut keeps exactly ⌊nonzero·topk⌋ entries, equal variances lowest index first, as a sort does", () => {
    const { base, models } = quantised(4, 2)
    const keep = Sce.select(base, models, 0.4)
    const variance = Float64Array.from({ length: N }, (_, j) => {
      const d = [models[0]![j]! - base[j]!, models[1]![j]! - base[j]!]
      const mean = (d[0]! + d[1]!) / 2
      return ((d[0]! - mean) ** 2 + (d[1]! - mean) ** 2) / 2
    })
    const nonzero = variance.filter((v) => v !== 0).length
    const k = Math.floor(nonzero * 0.4)
    // Stable: by variance descending, then index ascending.
    const order = Array.from({ length: N }, (_, j) => j).sort((i, j) => variance[j]! - variance[i]! || i - j)
    const want = new Uint8Array(N)
    for (const j of order.slice(0, k)) want[j] = 1
    expect(keep).toEqual(want)
  })

  it("sce: NaN task vectors give the bytes of one thread", async () => {
    const { base, models } = quantised(5, 2)
    const broken = [withNaN(models[0]!, [3, 70_000, N - 2]), models[1]!]
    for (const topk of [0.0001, 0.5]) {
      const want = Sce.apply(topk, base, broken)
      const out = output()
      await onPool(4, (pool) => Parallel.sce(pool, topk, shared(base), broken.map(shared), out))
      expectSameBits(out, want.out)
    }
  })

  for (const [label, shape] of [["rows", [4018, 50]], ["1-D", [N - 20]]] as const) {
    it(`arcee-fusion (${label}): the same bytes, threshold and share on 1, 2 and 4 workers; the float64 reference`, async () => {
      const n = shape.reduce((a, b) => a * b, 1)
      const { base, models } = quantised(6, 1)
      const [b, m] = [base.subarray(0, n), models[0]!.subarray(0, n)]
      const want = ArceeFusion.apply(shape, b, m)
      expect(want.taken).toBeGreaterThan(0)
      for (const w of WORKERS) {
        const out = new Float32Array(new SharedArrayBuffer(n * 4))
        const done = await onPool(w, (pool) => Parallel.arceeFusion(pool, shape, shared(b), shared(m), out))
        expectSameBits(out, want.out)
        expect(done).toEqual({ threshold: want.threshold, taken: want.taken })
      }
      if (label === "rows") {
        const ref = Ref.arceeFusion(shape, Array.from(m), Array.from(b))
        let off = 0
        for (let j = 0; j < n; j++) if (!Object.is(want.out[j], Math.fround(ref[j]!))) off++
        expect(off).toBe(0)
      }
    })
  }

  it("arcee-fusion: the quantiles are the sorted importances' elements, with NaN importances too", async () => {
    const { base, models } = quantised(7, 1)
    const model = withNaN(models[0]!, [10, 100_000])
    const shape = [401, 501]
    const scores = ArceeFusion.importance(shape, base, model)
    const sorted = scores.slice().sort()
    const q = (p: number) => sorted[Math.floor(p * (N - 1))]!
    const want = ArceeFusion.apply(shape, base, model)
    expect(want.threshold).toBe(q(0.5) + 1.5 * (q(0.75) - q(0.25)))
    const out = output()
    await onPool(2, (pool) => Parallel.arceeFusion(pool, shape, shared(base), shared(model), out))
    expectSameBits(out, want.out)
  })
})
