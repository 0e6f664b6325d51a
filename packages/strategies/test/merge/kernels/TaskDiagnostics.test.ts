// The diagnostics a merge reports per tensor: against a float64 computation by hand, and the same
// numbers from a worker pool (any worker count) as from one thread.
import { Effect, Exit, Result, Scope } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import * as Arena from "../../../src/merge/kernels/Arena.ts"
import * as Gram from "../../../src/merge/kernels/Gram.ts"
import * as Parallel from "../../../src/merge/kernels/Parallel.ts"
import * as Pool from "../../../src/merge/kernels/Pool.ts"
import * as Slerp from "../../../src/merge/kernels/Slerp.ts"
import * as TaskArithmetic from "../../../src/merge/kernels/TaskArithmetic.ts"
import * as TaskDiagnostics from "../../../src/merge/kernels/TaskDiagnostics.ts"
import * as TaskStatistics from "../../../src/merge/kernels/TaskStatistics.ts"
import { copierInto, family } from "./helpers.ts"

const single = (plan: TaskArithmetic.TaskArithmeticPlan, base: Float32Array, models: ReadonlyArray<Float32Array>) => {
  const partial = TaskArithmetic.apply(TaskStatistics.prepare(plan, base, models), new Float32Array(base.length), base, models)
  return partial === undefined ? undefined : TaskDiagnostics.summarize(plan, [partial], base.length)
}

const f64Norm = (x: Float32Array, base: Float32Array) => Math.sqrt(Array.from(x).reduce((s, v, j) => s + (Math.fround(v - base[j]!)) ** 2, 0))

describe("TIES diagnostics on a hand-checkable tensor", () => {
  // τ₀ = [3, −1, 2, −4, 0.5, 1], τ₁ = [−2, −3, 1, 1, 0.25, −0.5]; density 0.5 keeps the 3 largest |τ| of each:
  // model 0 keeps 3 (idx 0), −4 (3), 2 (2); model 1 keeps −3 (1), −2 (0), and the first of the tied 1s (2).
  // Elected signs (sum of kept): idx0 3−2=+1 → +, idx1 −3 → −, idx2 2+1 → +, idx3 −4 → −.
  // Kept entries: 6; agreeing: idx0 model 0 (+3), idx1 model 1, idx2 both, idx3 model 0 → 5 of 6.
  const base = new Float32Array([1, 1, 1, 1, 1, 1])
  const models = [
    Float32Array.from([3, -1, 2, -4, 0.5, 1], (t, j) => base[j]! + t),
    Float32Array.from([-2, -3, 1, 1, 0.25, -0.5], (t, j) => base[j]! + t)
  ]
  const plan = Result.getOrThrow(TaskArithmetic.plan({ weights: [1, 1], ...TaskArithmetic.presets.ties, density: 0.5 }, [6], 2, "w"))

  it("reports the kept fractions, the sign agreement and the task-vector norms a float64 computation gives", () => {
    const d = single(plan, base, models)!
    expect(d["kept.0"]).toBe(3 / 6)
    expect(d["kept.1"]).toBe(3 / 6)
    expect(d.agreement).toBe(5 / 6)
    expect(d["tau_norm.0"]).toBeCloseTo(Math.sqrt(9 + 1 + 4 + 16 + 0.25 + 1), 12)
    expect(d["tau_norm.1"]).toBeCloseTo(Math.sqrt(4 + 9 + 1 + 1 + 0.0625 + 0.25), 12)
  })

  it("counts DARE's survivors, and reports no agreement without consensus", () => {
    const dare = Result.getOrThrow(TaskArithmetic.plan({ weights: [1, 1], ...TaskArithmetic.presets["dare-linear"], density: 0.5, seed: 3 }, [4096], 2, "w"))
    const { base, models } = family(5, 4096, 2)
    const d = single(dare, base, models)!
    expect(d.agreement).toBeUndefined()
    // The survivors are the entries the merge used: those where the output moved by the model's τ.
    const out = new Float32Array(4096)
    const only = (i: number) => {
      const p = Result.getOrThrow(TaskArithmetic.plan({ weights: i === 0 ? [1, 0] : [0, 1], ...TaskArithmetic.presets["dare-linear"], density: 0.5, seed: 3 }, [4096], 2, "w"))
      TaskArithmetic.apply(TaskStatistics.prepare(p, base, models), out, base, models)
      return out.reduce((n, v, j) => n + +(v !== base[j]), 0)
    }
    expect(d["kept.0"]).toBe(only(0) / 4096)
    expect(d["kept.1"]).toBe(only(1) / 4096)
    expect(d["kept.0"]).toBeGreaterThan(0.45)
    expect(d["kept.0"]).toBeLessThan(0.55)
    expect(d["tau_norm.1"]).toBeCloseTo(f64Norm(models[1]!, base), 9)
  })

  it("has none on the weighted-sum fast path (plain task arithmetic)", () => {
    const plain = Result.getOrThrow(TaskArithmetic.plan({ weights: [1, 1] }, [6], 2, "w"))
    expect(single(plain, base, models)).toBeUndefined()
  })
})

describe("SLERP diagnostics", () => {
  it("reports Ω and the norms from the plan's statistics, as float64 gives them", () => {
    const a = new Float32Array([1, 0, 0, 0]), b = new Float32Array([1, 1, 0, 0])
    const plan = Result.getOrThrow(Slerp.plan({ t: 0.5 }, Slerp.statistics(a, b), false, "w"))
    const d = Slerp.diagnostics(plan, false)
    expect(d.omega).toBeCloseTo(Math.PI / 4, 12)
    expect(d.colinear).toBe(false)
    expect(d["norm.0"]).toBe(1)
    expect(d["norm.1"]).toBeCloseTo(Math.SQRT2, 12)
    // Nearly colinear: the lerp is taken, and the angle is still reported.
    const near = Result.getOrThrow(Slerp.plan({ t: 0.5 }, Slerp.statistics(a, new Float32Array([1, 0.01, 0, 0])), false, "w"))
    expect(Slerp.diagnostics(near, false)).toMatchObject({ colinear: true })
    expect(Slerp.diagnostics(near, false).omega as number).toBeCloseTo(Math.atan(0.01), 6)
  })
})

describe("diagnostics on a worker pool", () => {
  // Several blocks per worker, the last one partial.
  const N = 5 * Gram.BLOCK + 123
  const arena = Arena.make({ maxBytes: 24 * N * 4 })
  const inArena = copierInto(arena)
  const data = family(9, N, 3, 0.05)
  const base = inArena(data.base)
  const models = data.models.map(inArena)
  // One pool per worker count for the whole file (starting workers is the slow part).
  const scope = Effect.runSync(Scope.make())
  const pools = new Map<number, Pool.Pool>()
  const poolOf = async (workers: number) => {
    const pool = pools.get(workers) ?? await Effect.runPromise(Scope.provide(scope)(Pool.make({ workers, arena, inlineBelow: 0 })))
    pools.set(workers, pool)
    return pool
  }
  afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))

  it.each([
    ["ties", { density: 0.3 }],
    ["dare-ties", { density: 0.4, seed: 5 }],
    ["della", { density: 0.5, epsilon: 0.2, seed: 6 }],
    ["breadcrumbs", { density: 0.5, gamma: 0.05 }]
  ] as const)("%s: 1, 2 and 4 workers report exactly the single thread's numbers", async (name, extra) => {
    const plan = Result.getOrThrow(TaskArithmetic.plan({ weights: [1, 0.5, 0.25], ...TaskArithmetic.presets[name], ...extra }, [N], 3, "w"))
    const expected = single(plan, base, models)!
    expect(Object.keys(expected).length).toBeGreaterThan(5)
    for (const workers of [1, 2, 4]) {
      const pool = await poolOf(workers)
      const { diagnostics } = await Effect.runPromise(Parallel.taskArithmetic(pool, plan, arena.alloc(N)!, base, models))
      expect(diagnostics).toEqual(expected)
    }
  })

  it("slerp: the pool's Ω and norms are the single thread's", async () => {
    const pool = await poolOf(2)
    const pooled = await Effect.runPromise(Parallel.slerp(pool, { t: 0.3 }, arena.alloc(N)!, models[0]!, models[1]!, base, "w"))
    const alone = Result.getOrThrow(Slerp.plan({ t: 0.3 }, Slerp.statistics(models[0]!, models[1]!, base), true, "w"))
    expect(Slerp.diagnostics(pooled, true)).toEqual(Slerp.diagnostics(alone, true))
  })
})
