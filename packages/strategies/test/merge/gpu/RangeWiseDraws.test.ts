// Range-wise DARE, DELLA and `rescale: l1` groups on the GPU (src/merge/gpu/RangeWise.ts, packed
// inputs): the kept sets are the CPU's draws exactly (DELLA: its per-row ranks, also for ranges that
// start and end inside a row), the survivor counts are the CPU's, the L1 factors within
// `GpuTask.factorError` of the CPU's, and each range within `TaskArithmetic.bound` (tiesCompare.ts).
// End to end, merge/della with GpuMerge and CRUCIBLE_RANGE_WISE_BYTES=0 agrees with the CPU stage.
import { DType, Model, TensorRef } from "@crucible/core"
import { Effect } from "effect"
import { beforeEach, describe, expect, it } from "vitest"
import * as GpuRange from "../../../src/merge/gpu/RangeWise.ts"
import * as GpuTask from "../../../src/merge/gpu/TaskArithmetic.ts"
import type { PackedInput } from "../../../src/merge/kernels/PackedInput.ts"
import * as PackedParallel from "../../../src/merge/kernels/PackedParallel.ts"
import * as Kernel from "../../../src/merge/kernels/TaskArithmetic.ts"
import { Della } from "../../../src/merge/TaskArithmetic.ts"
import { normal } from "../kernels/helpers.ts"
import { floatsOf, forcedRangeWise, packedOf, stageOutput } from "./rangeWise.ts"
import { device, gpuHandle, skipWithoutGpu, throughGpuMerge as run } from "./support.ts"
import { bytes, compare, cpuMerge, planOf } from "./tiesCompare.ts"

beforeEach((context) => skipWithoutGpu(context))

// A range-wise merge on the GPU as RangeWise.ts runs it: statistics, then the output in ranges of `step`.
const gpuRangeWise = async (plan: Kernel.TaskArithmeticPlan, inputs: ReadonlyArray<PackedInput>, step: number, options: GpuRange.Options) => {
  const gpu = await device()
  const n = inputs[0]!.bytes.length / DType.byteSize[inputs[0]!.dtype]
  const prepared = await run(GpuRange.prepare(gpu, plan, inputs, options))
  const out = new Float32Array(n)
  const kept = new Float64Array(inputs.length - 1)
  const agree = new Float64Array(inputs.length - 1)
  for (let s = 0; s < n; s += step) {
    const e = Math.min(n, s + step)
    const applied = await run(GpuRange.apply(gpu, prepared, inputs, s, e, options))
    out.set(applied.out, s)
    applied.partial.kept.forEach((k, i) => (kept[i] = kept[i]! + k))
    applied.partial.agree.forEach((a, i) => (agree[i] = agree[i]! + a))
  }
  return { prepared, out, kept, agree }
}

describe("range-wise DARE, DELLA and L1 groups on the GPU", () => {
  it("the kept sets are the CPU's: DARE and DELLA (odd rows, ties, ranges inside rows), whole and in chunks", async () => {
    // Rows of 333 and ranges of 10,007 elements: most ranges start and end inside a row.
    const shape = [200, 333]
    const n = shape[0]! * shape[1]!
    const base = new Float32Array(n)
    // Task vectors on a grid of 1/8: equal magnitudes everywhere, so the tie-break decides ranks.
    const taus = [0, 1].map((i) => Float32Array.from(normal(70 + i, n, 0.5), (v) => Math.round(v * 8) / 8 || 0.125))
    const inputs = [base, ...taus].map((v) => packedOf(v, "F32"))
    for (const params of [
      { ...Kernel.presets["della-linear"], rescale: "none" as const, weights: [1, 1], density: [0.4, 0], epsilon: 0.3, seed: 21 },
      { ...Kernel.presets["della-linear"], rescale: "none" as const, weights: [1, 1], density: [0, 0.7], epsilon: 0.2, seed: 22 },
      { ...Kernel.presets["dare-linear"], rescale: "none" as const, weights: [1, 1], density: [0.35, 0], seed: 23 }
    ]) {
      const plan = planOf(params, shape, 2)
      expect(GpuRange.supports(plan, await device())).toBe(true)
      const cpu = cpuMerge(plan, base, taus)
      const cpuPartial = Kernel.apply(cpu.prepared, new Float32Array(n), base, taus)!
      // 3 float32 inputs in 16 KiB bindings: chunks of 1332 elements (4 rows).
      for (const options of [{}, { maxBindingBytes: 16384 }]) {
        const gpu = await gpuRangeWise(plan, inputs, 10_007, options)
        // One model draws over base 0: out = τ where kept, 0 where dropped, exactly — the kept set.
        expect(bytes(gpu.out).equals(bytes(cpu.out))).toBe(true)
        expect(gpu.kept).toEqual(cpuPartial.kept)
        expect(gpu.kept.some((k) => k > 0)).toBe(true)
      }
    }
  }, 120_000)

  it("dare-ties, dare-linear (unbiased), della, della-linear (unbiased), TIES with L1 on bf16: the CPU's selectors and survivors, factors and values within the bounds", async () => {
    // Rows of 512 (dividing the 65,536-element block, as RangeWise.eligible asks for DELLA), three blocks.
    const shape = [300, 512]
    const n = shape[0]! * shape[1]!
    const wave = (seed: number, around?: Float32Array) =>
      Float32Array.from({ length: n }, (_, i) => (around?.[i] ?? 0) + Math.sin(seed * 7919 + i * 0.013) * (around === undefined ? 1 : 0.05))
    const baseValues = wave(0)
    const inputs = [baseValues, ...[1, 2, 3].map((m) => wave(10 * m, baseValues))].map((v) => packedOf(v, "BF16"))
    const [base, ...models] = inputs.map(floatsOf)
    const weights = [0.3, 0.7, 1.1]
    let differing = 0
    for (const params of [
      { ...Kernel.presets["dare-ties"], weights, density: 0.4, seed: 1 },
      { ...Kernel.presets["dare-linear"], weights, density: [0.2, 0.5, 0.9], rescale: "unbiased" as const, seed: 2 },
      { ...Kernel.presets.della, weights, density: 0.5, epsilon: 0.2, seed: 3 },
      { ...Kernel.presets["della-linear"], weights, density: [0.3, 0.6, 0.5], epsilon: 0.1, rescale: "unbiased" as const, lambda: 0.8, seed: 4 },
      { ...Kernel.presets.ties, weights, density: 0.3, rescale: "l1" as const }
    ]) {
      const plan = planOf(params, shape, 3)
      expect(GpuRange.supports(plan, await device())).toBe(true)
      const cpu = cpuMerge(plan, base!, models)
      const cpuPartial = Kernel.apply(cpu.prepared, new Float32Array(n), base!, models)!
      // The CPU range-wise path gives the whole-tensor kernel's plan (its module doc): the reference.
      const cpuRange = await Effect.runPromise(Effect.gen(function* () {
        const runner = PackedParallel.runner(undefined)
        const scanned = yield* PackedParallel.scan(runner, plan, inputs, n)
        return yield* PackedParallel.prepare(runner, plan, inputs, n, scanned)
      }))
      expect(cpuRange).toEqual(cpu.prepared)
      for (const [step, options] of [[n, {}], [100_003, { maxBindingBytes: 256 * 1024 }]] as const) {
        const gpu = await gpuRangeWise(plan, inputs, step, options)
        expect(gpu.prepared.selectors).toEqual(cpu.prepared.selectors)
        const delta = GpuTask.factorError(plan, n)
        gpu.prepared.factors.forEach((f, i) => expect(Math.abs(f - cpu.prepared.factors[i]!)).toBeLessThanOrEqual(delta * Math.abs(cpu.prepared.factors[i]!)))
        // Survivors of the draws (DARE, DELLA): integer counts of the same kept sets.
        expect(gpu.kept).toEqual(plan.sparsify === "magnitude" ? new Float64Array(3) : cpuPartial.kept)
        const nearZero = compare(gpu.out, cpu.out, cpu.prepared, base!, models)
        gpu.agree.forEach((a, i) => expect(Math.abs(a - cpuPartial.agree[i]!)).toBeLessThanOrEqual(nearZero))
        differing += gpu.out.filter((v, j) => v !== cpu.out[j]).length
      }
    }
    // Float32 arithmetic on the GPU rounds otherwise somewhere: proof that the GPU ran.
    expect(differing).toBeGreaterThan(0)
  }, 120_000)

  it("merge/della with GpuMerge: a group forced range-wise agrees with the CPU stage within the bound", async () => {
    const handle = await gpuHandle()
    const shape = [256, 512]
    const n = shape[0]! * shape[1]!
    const baseValues = normal(5, n, 0.02)
    const tunes = [1, 2].map((m) => Float32Array.from(normal(5 + m, n, 0.002), (v, j) => baseValues[j]! + v))
    const modelOf = (name: string, values: Float32Array) => Model.make(name, [TensorRef.fromBytes("mlp.weight", "BF16", shape, DType.fromNumbers(values, "BF16"))])
    const base = modelOf("base", baseValues)
    const models = tunes.map((v, m) => modelOf(`ft${m}`, v))
    const params = { density: 0.5, epsilon: 0.2, weights: [0.6, 0.9], seed: 9, out_dtype: "float32" }
    const stage = (onGpu: boolean) => stageOutput(Della, params, { base, models }, "mlp.weight", 3 * n * 2, onGpu ? handle : undefined)
    await forcedRangeWise(async () => {
      const cpu = await stage(false)
      const gpu = await stage(true)
      const [b, ...m] = [baseValues, ...tunes].map((v) => floatsOf(packedOf(v, "BF16")))
      const reference = cpuMerge(planOf({ ...Kernel.presets.della, density: 0.5, epsilon: 0.2, weights: [0.6, 0.9], seed: 9 }, shape, 2, "mlp.weight"), b!, m)
      expect(cpu).toEqual(reference.out)
      compare(gpu, cpu, reference.prepared, b!, m)
      expect(gpu.some((v, j) => v !== cpu[j])).toBe(true)
    })
  }, 120_000)
})
