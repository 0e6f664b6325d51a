import { Effect, Result } from "effect"
import { beforeEach, describe, expect, it } from "vitest"
import * as GpuTask from "../../../src/merge/gpu/TaskArithmetic.ts"
import * as Kernel from "../../../src/merge/kernels/TaskArithmetic.ts"
import { family, rng } from "../kernels/helpers.ts"
import { device, skipWithoutGpu } from "./support.ts"
import { compare, cpuMerge } from "./tiesCompare.ts"

const U = 2 ** -24

beforeEach((context) => skipWithoutGpu(context))

const planOf = (params: Kernel.TaskArithmeticParams, n: number, models: number) => {
  const planned = Kernel.plan(params, [n], models, "t")
  if (Result.isFailure(planned)) throw planned.failure
  return planned.success
}

describe("GPU task arithmetic and TIES", () => {
  it("TIES: the kept sets are the CPU's (exact cuts, also inside groups of equal magnitudes), results within the bound", async () => {
    const gpu = await device()
    const n = 20_011
    for (const [seed, count, density, quantize] of [[1, 2, 0.2, false], [2, 3, 0.5, true], [3, 5, [0.1, 0.9, 0.3, 0.5, 0.7], true], [4, 1, 0.33, false]] as const) {
      const { base, models } = family(seed, n, count)
      // Quantized task vectors: many exactly equal magnitudes (and zeros), so cuts fall inside ties.
      if (quantize) models.forEach((m) => m.forEach((v, j) => (m[j] = base[j]! + Math.round((v - base[j]!) * 64) / 64)))
      const r = rng(seed)
      const weights = Array.from({ length: count }, () => 0.25 + r())
      const plan = planOf({ ...Kernel.presets.ties, weights, density, lambda: 0.9 }, n, count)
      const cpu = cpuMerge(plan, base, models)
      const result = await Effect.runPromise(GpuTask.merge(gpu, plan, base, models))
      expect(result.prepared.selectors).toEqual(cpu.prepared.selectors)
      if (quantize) expect(result.prepared.selectors.some((s) => s.kind === "window" && s.hi.index > 0)).toBe(true)
      compare(result.out, cpu.out, cpu.prepared, base, models)
    }
  })

  it("sign election: identical except where the sum is within rounding of 0 (exact cancellations elect + on both)", async () => {
    const gpu = await device()
    const n = 8192
    const { base, models } = family(9, n, 3)
    // Model 1's task vector is model 0's negated (exactly, or off by a few ulps): the sums are 0 or nearly.
    models[1] = Float32Array.from(models[0]!, (v, j) => base[j]! - (v - base[j]!) * (j % 2 === 0 ? 1 : 1 + 1e-7))
    models[2] = Float32Array.from(base, (b, j) => b + (j % 4 === 0 ? 0.01 : 0))
    const plan = planOf({ ...Kernel.presets.ties, weights: [1, 1, 1], density: 1 }, n, 3)
    const cpu = cpuMerge(plan, base, models)
    const result = await Effect.runPromise(GpuTask.merge(gpu, plan, base, models))
    const nearZero = compare(result.out, cpu.out, cpu.prepared, base, models)
    expect(nearZero).toBeGreaterThan(0)
  })

  it("task arithmetic (weighted sum), breadcrumbs, count consensus", async () => {
    const gpu = await device()
    const n = 10_007
    const { base, models } = family(5, n, 3)
    for (const params of [
      { ...Kernel.presets["task-arithmetic"], weights: [0.5, -0.3, 1.2], lambda: 1.5 },
      { ...Kernel.presets.breadcrumbs, weights: [1, 0.5, 0.25], density: 0.4, gamma: 0.05 },
      { ...Kernel.presets["breadcrumbs-ties"], weights: [1, 0.5, 0.25], density: 0.4, gamma: 0.05 },
      { ...Kernel.presets.ties, consensus: "count" as const, weights: [1, 2, 3], density: 0.6 }
    ]) {
      const plan = planOf(params, n, 3)
      expect(GpuTask.supports(plan, gpu)).toBe(true)
      const cpu = cpuMerge(plan, base, models)
      const result = await Effect.runPromise(GpuTask.merge(gpu, plan, base, models))
      expect(result.prepared.selectors).toEqual(cpu.prepared.selectors)
      if (plan.sparsify === "none") {
        // The weighted sum over [base, θ…]: its own bound (WeightedSum.ts) against the CPU.
        const c = Kernel.affineCoefficients(cpu.prepared)!
        const inputs = [base, ...models]
        for (let j = 0; j < n; j++) {
          const terms = inputs.reduce((a, x, i) => a + Math.abs(c[i]! * x[j]!), 0)
          expect(Math.abs(result.out[j]! - cpu.out[j]!)).toBeLessThanOrEqual((inputs.length + 2) * U * terms)
        }
      } else compare(result.out, cpu.out, cpu.prepared, base, models)
    }
    // DELLA's per-row magnitude ranks run on the GPU too (Della.test.ts).
    expect(GpuTask.supports(planOf({ ...Kernel.presets.della, weights: [1, 1, 1], density: 0.5 }, n, 3), gpu)).toBe(true)
  })

  it("a tensor larger than one binding: chunks give the bytes of one pass and the same cuts", async () => {
    const gpu = await device()
    const n = 30_000
    const { base, models } = family(11, n, 2)
    const plan = planOf({ ...Kernel.presets.ties, weights: [1, 0.7], density: 0.3 }, n, 2)
    const whole = await Effect.runPromise(GpuTask.merge(gpu, plan, base, models))
    // 3 float32 arrays per element in 16 KiB bindings: 1280 elements a chunk, 24 chunks.
    const chunked = await Effect.runPromise(GpuTask.merge(gpu, plan, base, models, { maxBindingBytes: 16384 }))
    expect(chunked.prepared.selectors).toEqual(whole.prepared.selectors)
    expect(Buffer.from(chunked.out.buffer).equals(Buffer.from(whole.out.buffer))).toBe(true)
    expect(chunked.partial?.agree).toEqual(whole.partial?.agree)
  })
})
