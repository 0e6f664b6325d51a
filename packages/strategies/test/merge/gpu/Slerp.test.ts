import { Effect, Result } from "effect"
import { beforeEach, describe, expect, it } from "vitest"
import * as GpuSlerp from "../../../src/merge/gpu/Slerp.ts"
import * as GpuSum from "../../../src/merge/gpu/WeightedSum.ts"
import * as Kernel from "../../../src/merge/kernels/Slerp.ts"
import { family, normal } from "../kernels/helpers.ts"
import { device, skipWithoutGpu } from "./support.ts"

beforeEach((context) => skipWithoutGpu(context))

/** Σ|aⱼbⱼ| of the three Gram entries, in float64 (task vectors with a base). */
const absoluteSums = (a: Float32Array, b: Float32Array, base?: Float32Array) => {
  const s = [0, 0, 0]
  for (let j = 0; j < a.length; j++) {
    const x = a[j]! - (base?.[j] ?? 0), y = b[j]! - (base?.[j] ?? 0)
    s[0]! += x * x
    s[1]! += Math.abs(x * y)
    s[2]! += y * y
  }
  return s
}

const check = async (a: Float32Array, b: Float32Array, base: Float32Array | undefined, t: number, options: GpuSum.Options = {}) => {
  const gpu = await device()
  const result = await Effect.runPromise(GpuSlerp.merge(gpu, { t }, a, b, base, "w", options))
  // The statistics against the float64 Gram matrix, within the stated bound.
  const exact = Kernel.statistics(a, b, base)
  const k = GpuSlerp.perThread(gpu, a.length, base === undefined ? 2 : 3, options)
  const sums = absoluteSums(a, b, base)
  ;[[0, 0], [1, 1], [3, 2]].forEach(([e, s]) => expect(Math.abs(result.gram[e!]! - exact[e!]!)).toBeLessThanOrEqual(GpuSlerp.gramBound(k, sums[s!]!)))
  // The CPU's plan and output; the branch agrees here (no test input sits at the threshold).
  const cpuPlan = Kernel.plan({ t }, exact, base !== undefined, "w")
  if (Result.isFailure(cpuPlan)) throw cpuPlan.failure
  expect(result.plan.colinear).toBe(cpuPlan.success.colinear)
  const cpu = new Float32Array(a.length)
  Kernel.apply(cpuPlan.success, cpu, a, b, base)
  const inputs = base === undefined ? [a, b] : [base, a, b]
  const c = result.plan.coefficients, c0 = cpuPlan.success.coefficients
  for (let j = 0; j < a.length; j++) {
    let terms = 0, drift = 0
    inputs.forEach((x, i) => {
      terms += Math.abs(c[i]! * x[j]!)
      drift += Math.abs(c[i]! - c0[i]!) * Math.abs(x[j]!)
    })
    const b = GpuSum.bound(inputs.length, terms) + drift
    if (!(Math.abs(result.out[j]! - cpu[j]!) <= b)) throw new Error(`element ${j}: gpu ${result.out[j]} vs cpu ${cpu[j]}: > ${b}`)
  }
  return result
}

describe("GPU SLERP", () => {
  it("two models: statistics and output within the stated bounds of the CPU's", async () => {
    const result = await check(normal(1, 30_001), normal(2, 30_001, 0.5, 0.1), undefined, 0.3)
    expect(result.plan.colinear).toBe(false)
  })

  it("task vectors with a base, and a tensor in chunks", async () => {
    const { base, models } = family(3, 20_000, 2, 0.01)
    await check(models[0]!, models[1]!, base, 0.6)
    await check(models[0]!, models[1]!, base, 0.6, { maxBindingBytes: 3 * 4 * 512 })
  })

  it("nearly parallel inputs fall back to the lerp, as on the CPU; a zero task vector is left unnormalised", async () => {
    const a = normal(4, 10_000)
    const result = await check(a, Float32Array.from(a, (v, j) => v * 1.001 + 1e-6 * Math.cos(j)), undefined, 0.5)
    expect(result.plan.colinear).toBe(true)
    const zero = await check(a, a, a, 0.5)
    expect(zero.plan.cosine).toBe(0)
  })
})
