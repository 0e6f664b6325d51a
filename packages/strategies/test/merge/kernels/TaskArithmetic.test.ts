import { Result } from "effect"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as TaskArithmetic from "../../../src/merge/kernels/TaskArithmetic.ts"
import * as TaskStatistics from "../../../src/merge/kernels/TaskStatistics.ts"
import { expectClose, expectSameBits, family, normal } from "./helpers.ts"
import { generalized, type RefOptions, sparsified } from "./reference.ts"

const SHAPE = [40, 50] as const
const N = SHAPE[0] * SHAPE[1]
const TENSOR = "model.layers.2.mlp.down_proj.weight"

const run = (params: TaskArithmetic.TaskArithmeticParams, base: Float32Array, models: ReadonlyArray<Float32Array>, shape: ReadonlyArray<number> = SHAPE) => {
  const plan = Result.getOrThrow(TaskArithmetic.plan(params, shape, models.length, TENSOR))
  const prepared = TaskStatistics.prepare(plan, base, models)
  const out = new Float32Array(base.length)
  TaskArithmetic.apply(prepared, out, base, models)
  return { out, prepared }
}

const refOptions = (params: TaskArithmetic.TaskArithmeticParams & TaskArithmetic.Switches, models: number, shape: ReadonlyArray<number> = SHAPE): RefOptions => {
  const each = (v: TaskArithmetic.PerModel | undefined) => (v === undefined ? undefined : typeof v === "number" ? Array(models).fill(v) : v)
  return {
    ...params,
    density: each(params.density),
    gamma: each(params.gamma),
    epsilon: each(params.epsilon),
    tensor: TENSOR,
    shape
  } as RefOptions
}

describe("generalized task arithmetic against the float64 reference", () => {
  const { base, models } = family(11, N, 3)
  const cases: Array<[string, Partial<TaskArithmetic.TaskArithmeticParams>]> = [
    ["task-arithmetic", { lambda: 0.8 }],
    ["ties", { density: [0.2, 0.5, 0.9] }],
    ["ties", { density: 0.3, consensus: "count" }],
    ["ties", { density: 0.3, lambda: 1.3, normalize: false }],
    ["dare-linear", { density: 0.4, seed: 7 }],
    ["dare-ties", { density: [0.1, 0.5, 0.7], seed: 3 }],
    ["dare-ties", { density: 0.5, rescale: "l1", seed: 3 }],
    ["breadcrumbs", { density: 0.6, gamma: 0.05 }],
    ["breadcrumbs-ties", { density: 0.9, gamma: 0.2 }],
    ["della", { density: 0.5, epsilon: 0.2, seed: 11 }],
    ["della-linear", { density: [0.3, 0.6, 0.7], epsilon: 0.1, seed: 12 }],
    ["della", { density: 0.5, epsilon: 0.1, rescale: "l1" }],
    ["ties", { density: 0.5, rescale: "l1" }]
  ]
  it.each(cases)("%s %j", (preset, extra) => {
    const params = { weights: [0.5, 1.0, 0.7], ...TaskArithmetic.presets[preset as TaskArithmetic.PresetName], ...extra }
    const { out } = run(params, base, models)
    expectClose(out, generalized(base, models, refOptions(params, 3)), 2, 1e-7)
  })

  it("the one-pass sign election (≤ 4 models) gives the bytes of the general one (models equal to the base, padding to 5, never agree: they change nothing but the path)", () => {
    for (const count of [1, 2, 3, 4]) {
      const { base, models } = family(900 + count, N, count)
      const weights = models.map((_, i) => 1 - 0.6 * i)
      const padding = Array.from({ length: 5 - count }, () => base.slice())
      const fused = run({ weights, ...TaskArithmetic.presets.ties, density: 0.4 }, base, models).out
      const general = run({ weights: [...weights, ...padding.map(() => 1)], ...TaskArithmetic.presets.ties, density: 0.4 }, base, [...models, ...padding]).out
      expectSameBits(fused, general)
    }
  })

  it("a 1-D tensor is one DELLA row; a 3-D tensor has numel/shape[0] per row", () => {
    for (const shape of [[N], [10, 20, 10]]) {
      const params = { weights: [1, 1, 1], ...TaskArithmetic.presets.della, density: 0.4, epsilon: 0.3, seed: 5 }
      const { out } = run(params, base, models, shape)
      expectClose(out, generalized(base, models, refOptions(params, 3, shape)), 2, 1e-7)
    }
  })
})

describe("edge cases", () => {
  const { base, models } = family(21, N, 3)

  it("models equal to the base give the base, bit for bit, for every preset", () => {
    const copies = [base, base, base].map((b) => Float32Array.from(b))
    for (const preset of Object.keys(TaskArithmetic.presets) as Array<TaskArithmetic.PresetName>) {
      const { out } = run({ weights: [0.3, 0.3, 0.4], ...TaskArithmetic.presets[preset], density: 0.5, epsilon: 0.1 }, base, copies)
      expectSameBits(out, base)
    }
  })

  it("density 0 drops everything; density 1 keeps everything", () => {
    for (const preset of ["ties", "dare-ties", "breadcrumbs", "della"] as const) {
      const { out } = run({ weights: [1, 1, 1], ...TaskArithmetic.presets[preset], density: 0 }, base, models)
      expectSameBits(out, base)
    }
    // density 1: TIES is sign election over all entries; DARE is plain task arithmetic.
    const full = run({ weights: [1, 2, 3], ...TaskArithmetic.presets.ties, density: 1 }, base, models).out
    const reference = generalized(base, models, refOptions({ weights: [1, 2, 3], ...TaskArithmetic.presets.ties, consensus: "sum", sparsify: "none" }, 3))
    expectClose(full, reference, 2, 1e-7)
    const dare = run({ weights: [1, 2, 3], ...TaskArithmetic.presets["dare-linear"], density: 1 }, base, models).out
    const ta = run({ weights: [1, 2, 3] }, base, models).out
    expectClose(dare, Float64Array.from(ta), 1)
  })

  it("all signs equal: TIES is the mean of the kept entries", () => {
    const positive = [0.1, 0.2, 0.3].map((s, i) => Float32Array.from(base, (b, j) => b + s * (1 + ((j * (i + 3)) % 7))))
    const { out } = run({ weights: [1, 1, 1], ...TaskArithmetic.presets.ties, density: 1 }, base, positive)
    const expected = Float64Array.from(base, (b, j) => {
      const taus = positive.map((x) => Math.fround(x[j]! - b))
      return b + taus.reduce((a, t) => a + t, 0) / 3
    })
    expectClose(out, expected, 2)
  })

  it("zeros never vote: an entry only one model changed keeps that model's value", () => {
    const sparse = models.map((x, i) => Float32Array.from(base, (b, j) => (j % 3 === i ? x[j]! : b)))
    const { out } = run({ weights: [1, 1, 1], ...TaskArithmetic.presets.ties, density: 1 }, base, sparse)
    for (let j = 0; j < N; j++) expect(out[j]).toBe(sparse[j % 3]![j])
  })

  it("a negative weight subtracts a task", () => {
    const { out } = run({ weights: [1, -1], lambda: 1 }, base, [models[0]!, models[0]!])
    expectSameBits(out, base)
    const minus = run({ weights: [-1] }, base, [models[1]!]).out
    expectClose(minus, Float64Array.from(base, (b, j) => b - (models[1]![j]! - b)), 1)
  })

  it("a model merged with N copies of itself returns itself (property)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...(Object.keys(TaskArithmetic.presets) as Array<TaskArithmetic.PresetName>)),
        fc.integer({ min: 1, max: 5 }),
        // Density 1 keeps everything; below it DELLA needs density ± epsilon strictly inside (0, 1),
        // which floating point loses within 1e-16 of 1.
        fc.oneof(fc.constant(1), fc.double({ min: 0.05, max: 0.99, noNaN: true })),
        (preset, copies, density) => {
          const x = models[0]!
          const { out } = run({ weights: Array(copies).fill(1 / copies), ...TaskArithmetic.presets[preset], density, epsilon: Math.min(density, 1 - density) / 2 }, x, Array(copies).fill(x))
          expectSameBits(out, x)
        }
      ),
      { numRuns: 40 }
    )
  })

  it("the order of the models does not matter (property)", () => {
    fc.assert(
      fc.property(
        // Deterministic presets only: DARE/DELLA draws are keyed by model index, so reordering
        // models reorders their streams too.
        fc.constantFrom("task-arithmetic", "ties", "breadcrumbs", "breadcrumbs-ties"),
        fc.constantFrom([0, 1, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0]),
        (preset: TaskArithmetic.PresetName, order) => {
          const weights = [0.5, 1, 0.25]
          const params = { ...TaskArithmetic.presets[preset], density: 0.4, gamma: 0.05 }
          const direct = run({ ...params, weights }, base, models).out
          const permuted = run({ ...params, weights: order.map((i) => weights[i]!) }, base, order.map((i) => models[i]!)).out
          expectClose(permuted, Float64Array.from(direct), 2, 1e-7)
        }
      ),
      { numRuns: 20 }
    )
  })

  it("splitting into ranges or windows never changes the bytes", () => {
    for (const preset of ["ties", "dare-ties", "della", "breadcrumbs-ties"] as const) {
      const params = { weights: [0.5, 1, 0.25], ...TaskArithmetic.presets[preset], density: 0.4, epsilon: 0.2, seed: 9 }
      const { out: whole, prepared } = run(params, base, models)
      const parts = new Float32Array(N)
      for (const [s, e] of [[0, 333], [333, 1000], [1000, 1717], [1717, N]]) TaskArithmetic.apply(prepared, parts, base, models, s, e)
      expectSameBits(parts, whole)
      // Windows of whole rows read separately, with their tensor offset.
      const windowed = new Float32Array(N)
      for (let s = 0; s < N; s += 500) {
        const w = (a: Float32Array) => a.subarray(s, s + 500)
        TaskArithmetic.apply(prepared, w(windowed), w(base), models.map(w), 0, 500, s)
      }
      expectSameBits(windowed, whole)
    }
  })
})

describe("sparsification statistics", () => {
  const { base, models } = family(31, 20000, 1)
  const tau = Float64Array.from(models[0]!, (x, j) => Math.fround(x - base[j]!))

  it("DARE keeps ≈ density and its unbiased rescale preserves the sum in expectation", () => {
    const o = refOptions({ weights: [1], ...TaskArithmetic.presets["dare-linear"], rescale: "unbiased", density: 0.3, seed: 1 }, 1, [20000])
    const s = sparsified(base, models[0]!, 0, o)
    const kept = s.reduce((c, v) => c + (v !== 0 ? 1 : 0), 0)
    expect(Math.abs(kept / 20000 - 0.3)).toBeLessThan(4 * Math.sqrt(0.21 / 20000))
    const sumAbs = tau.reduce((a, t) => a + Math.abs(t), 0)
    expect(Math.abs(s.reduce((a, v) => a + Math.abs(v), 0) / sumAbs - 1)).toBeLessThan(0.05)
  })

  it("L1 rescale restores the L1 norm exactly", () => {
    const params = { weights: [1], ...TaskArithmetic.presets.ties, density: 0.2, rescale: "l1" as const }
    const { out } = run(params, base, models, [20000])
    const before = tau.reduce((a, t) => a + Math.abs(t), 0)
    const after = Array.from(out).reduce((a, v, j) => a + Math.abs(v - base[j]!), 0)
    expect(after / before).toBeCloseTo(1, 4)
  })

  it("TIES keeps exactly ⌊density·n⌋ entries", () => {
    const { out } = run({ weights: [1], ...TaskArithmetic.presets.ties, density: 0.137 }, base, models, [20000])
    let changed = 0
    for (let j = 0; j < 20000; j++) if (out[j] !== base[j]) changed++
    expect(changed).toBe(Math.floor(0.137 * 20000))
  })
})

describe("validation", () => {
  const fail = (params: TaskArithmetic.TaskArithmeticParams, models = 2) => {
    const r = TaskArithmetic.plan(params, [4, 4], models, "layers.1.w", "dare-ties")
    if (Result.isSuccess(r)) return expect.fail("expected a failure")
    return r.failure
  }
  it("names the parameter and the tensor", () => {
    const e = fail({ weights: [1, 1], density: 1.5 })
    expect(e._tag).toBe("InvalidMergeParameter")
    expect(e.message).toContain("layers.1.w")
    expect(e.message).toContain("density")
    expect(fail({ weights: [1] }).message).toContain("1 weights for 2 models")
    expect(fail({ weights: [1, 1], density: [0.5] }).message).toContain("1 values for 2 models")
    expect(fail({ weights: [1, 1], sparsify: "magnitude", rescale: "unbiased", density: 0.5 }).message).toContain("unbiased")
    expect(fail({ weights: [1, 1], sparsify: "della", density: 0.9, epsilon: 0.2 }).message).toContain("epsilon")
    expect(fail({ weights: [1, 1], sparsify: "breadcrumbs", density: 0.5, gamma: -0.1 }).message).toContain("gamma")
    expect(fail({ weights: [1, 1], lambda: Number.NaN }).message).toContain("lambda")
    expect(fail({ weights: [1, 1], seed: 0.5 }).message).toContain("seed")
    expect(fail({ weights: [] }, 0)._tag).toBe("MergeInputMismatch")
  })

  it("the presets are mergekit's", () => {
    expect(TaskArithmetic.presets.ties).toEqual({ sparsify: "magnitude", consensus: "sum", rescale: "none", normalize: true })
    // DARE and DELLA keep each task vector's L1 norm by default, as mergekit's `rescale: true`.
    for (const name of ["dare-linear", "dare-ties", "della", "della-linear"] as const) expect(TaskArithmetic.presets[name].rescale).toBe("l1")
    expect(TaskArithmetic.presets["dare-ties"].sparsify).toBe("random")
    expect(TaskArithmetic.presets["breadcrumbs-ties"].consensus).toBe("sum")
  })

  it("plans without data-dependent parts skip the statistics", () => {
    const plan = Result.getOrThrow(TaskArithmetic.plan({ weights: [1, 1], ...TaskArithmetic.presets["dare-ties"], rescale: "unbiased", density: 0.5 }, [8], 2, "t"))
    expect(plan.needsStatistics).toBe(false)
    expect(TaskArithmetic.withoutStatistics(plan)).toBeDefined()
    // DARE's default, mergekit's L1 rescale, needs each task vector's norms first.
    const dare = Result.getOrThrow(TaskArithmetic.plan({ weights: [1, 1], ...TaskArithmetic.presets["dare-ties"], density: 0.5 }, [8], 2, "t"))
    expect(dare.needsStatistics).toBe(true)
    const ties = Result.getOrThrow(TaskArithmetic.plan({ weights: [1, 1], ...TaskArithmetic.presets.ties, density: 0.5 }, [8], 2, "t"))
    expect(ties.needsStatistics).toBe(true)
    expect(normal(1, 1).length).toBe(1)
  })
})
