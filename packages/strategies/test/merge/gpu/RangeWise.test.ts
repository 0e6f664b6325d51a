// Range-wise task-arithmetic groups (packed bf16/f16/f32 inputs) on the GPU (src/merge/gpu/RangeWise.ts):
// the cuts — and so the kept sets and kept counts — are the CPU range-wise path's exactly, the
// non-finite scan finds what the CPU's finds, and each output range agrees with the CPU's within
// `TaskArithmetic.bound` (elements whose election is within rounding of 0 only counted: tiesCompare.ts).
// End to end, merge/ties with GpuMerge and CRUCIBLE_RANGE_WISE_BYTES=0 gives values within that bound.
import { DType, Model, TensorRef } from "@crucible/core"
import { Effect } from "effect"
import { beforeEach, describe, expect, it } from "vitest"
import * as GpuRange from "../../../src/merge/gpu/RangeWise.ts"
import type { PackedInput } from "../../../src/merge/kernels/PackedInput.ts"
import * as PackedParallel from "../../../src/merge/kernels/PackedParallel.ts"
import * as Kernel from "../../../src/merge/kernels/TaskArithmetic.ts"
import { Ties } from "../../../src/merge/TaskArithmetic.ts"
import { floatsOf, forcedRangeWise, packedOf, stageOutput } from "./rangeWise.ts"
import { device, gpuHandle, skipWithoutGpu } from "./support.ts"
import { compare, planOf as planFor } from "./tiesCompare.ts"

beforeEach((context) => skipWithoutGpu(context))

// Odd size, over three 65,536-element blocks (the range-wise minimum is one block).
const SHAPE = [301, 777]
const n = SHAPE[0]! * SHAPE[1]!
const wave = (seed: number, around?: Float32Array) =>
  Float32Array.from({ length: n }, (_, i) => (around?.[i] ?? 0) + Math.sin(seed * 7919 + i * 0.013) * (around === undefined ? 1 : 0.05))
const baseValues = wave(0)
const tuneValues = [1, 2, 3].map((m) => wave(10 * m, baseValues))

const planOf = (params: Kernel.TaskArithmeticParams, models: number) => planFor(params, SHAPE, models)

// The CPU range-wise path in this thread: statistics, then the output in one range.
const cpuRangeWise = (plan: Kernel.TaskArithmeticPlan, inputs: ReadonlyArray<PackedInput>) =>
  Effect.runPromise(Effect.gen(function* () {
    const runner = PackedParallel.runner(undefined)
    const scanned = yield* PackedParallel.scan(runner, plan, inputs, n)
    const prepared = yield* PackedParallel.prepare(runner, plan, inputs, n, scanned)
    const out = new Float32Array(n)
    const { parts } = yield* PackedParallel.apply(runner, prepared, inputs, out, 0, n)
    return { scanned, prepared, out, parts }
  }))

describe("range-wise task arithmetic on the GPU (packed inputs)", () => {
  it("TIES of 3 bf16 models: the CPU's cuts (kept counts), its election and values within the bound, in ranges and chunks", async () => {
    const gpu = await device()
    const inputs = [baseValues, ...tuneValues].map((v) => packedOf(v, "BF16"))
    const [base, ...models] = inputs.map(floatsOf)
    // Elements where the GPU's float32 arithmetic rounds otherwise than the CPU's: proof that the GPU ran.
    let differing = 0
    for (const params of [
      { ...Kernel.presets.ties, weights: [0.3, 0.7, 1.1], density: 0.3, lambda: 0.9 },
      { ...Kernel.presets["breadcrumbs-ties"], weights: [1, 0.5, 2], density: [0.2, 0.5, 0.7], gamma: 0.02 },
      { ...Kernel.presets.ties, consensus: "count" as const, weights: [1, 1, 1], density: 0.6 },
      { ...Kernel.presets["task-arithmetic"], weights: [0.5, 1, -0.25], lambda: 0.9 }
    ]) {
      const plan = planOf(params, 3)
      const cpu = await cpuRangeWise(plan, inputs)
      // The whole binding, and 256 KiB bindings (several chunks per pass).
      for (const options of [{}, { maxBindingBytes: 256 * 1024 }]) {
        const prepared = await Effect.runPromise(GpuRange.prepare(gpu, plan, inputs, options))
        // Identical cuts: the same kept set, so the same kept counts.
        expect(prepared).toEqual(cpu.prepared)
        // bf16 task vectors tie often: some cut falls inside a group of equal magnitudes (the host scan).
        if (plan.sparsify === "magnitude") expect(prepared.selectors.some((s) => s.kind === "window" && s.hi.index > 0)).toBe(true)
        // Ranges as RangeWise asks (and an odd start): 1M-element ranges cover it whole; here 100,003.
        const out = new Float32Array(n)
        const agree = new Float64Array(3)
        for (let s = 0; s < n; s += 100_003) {
          const e = Math.min(n, s + 100_003)
          const applied = await Effect.runPromise(GpuRange.apply(gpu, prepared, inputs, s, e, options))
          out.set(applied.out, s)
          applied.partial.agree.forEach((a, i) => (agree[i] = agree[i]! + a))
        }
        const nearZero = compare(out, cpu.out, cpu.prepared, base!, models)
        // Agreement counts: the CPU's, except at elements elected within rounding of 0 (one per model at most each).
        const cpuAgree = cpu.parts.reduce((t, p) => t.map((v, i) => v + p.agree[i]!), [0, 0, 0])
        agree.forEach((a, i) => expect(Math.abs(a - cpuAgree[i]!)).toBeLessThanOrEqual(nearZero))
        differing += out.filter((v, j) => v !== cpu.out[j]).length
      }
    }
    expect(differing).toBeGreaterThan(0)
  }, 120_000)

  it("f16 and f32 inputs, mixed dtypes, and the non-finite scan", async () => {
    const gpu = await device()
    const plan = planOf({ ...Kernel.presets.ties, weights: [1, 1], density: 0.25 }, 2)
    for (const dtypes of [["F16", "F16", "F16"], ["F32", "F32", "F32"], ["BF16", "F32", "F16"]] as const) {
      const inputs = [baseValues, tuneValues[0]!, tuneValues[1]!].map((v, k) => packedOf(v, dtypes[k]!))
      const [base, ...models] = inputs.map(floatsOf)
      const cpu = await cpuRangeWise(plan, inputs)
      const prepared = await Effect.runPromise(GpuRange.prepare(gpu, plan, inputs))
      expect(prepared).toEqual(cpu.prepared)
      const { out } = await Effect.runPromise(GpuRange.apply(gpu, prepared, inputs, 0, n))
      compare(out, cpu.out, cpu.prepared, base!, models)
      const scanned = await Effect.runPromise(GpuRange.scan(gpu, inputs))
      expect(scanned.every((c) => c.first === -1 && c.count === 0)).toBe(true)
    }
    // NaN and ±Inf in each dtype: the first index, its value and the count, as the CPU scan gives.
    for (const dtype of ["BF16", "F16", "F32"] as const) {
      const broken = tuneValues[1]!.slice()
      broken[70_001] = NaN
      broken[100_000] = -Infinity
      broken[n - 1] = Infinity
      const inputs = [packedOf(baseValues, dtype), packedOf(tuneValues[0]!, dtype), packedOf(broken, dtype)]
      const scanned = await Effect.runPromise(GpuRange.scan(gpu, inputs, { maxBindingBytes: 256 * 1024 }))
      const cpu = await cpuRangeWise(planOf({ ...Kernel.presets["task-arithmetic"], weights: [1, 1] }, 2), inputs)
      expect(cpu.scanned.nonFinite).toMatchObject({ input: 2, first: 70_001, count: 3 })
      expect(scanned[2]!.first).toBe(70_001)
      expect(scanned[2]!.value).toBeNaN()
      expect(scanned[2]!.count).toBe(3)
      expect(scanned.slice(0, 2).every((c) => c.first === -1)).toBe(true)
    }
  }, 120_000)

  it("merge/ties with GpuMerge: a group forced range-wise agrees with the CPU stage within the bound; non-finite inputs fail alike", async () => {
    const handle = await gpuHandle()
    const modelOf = (name: string, values: Float32Array) => Model.make(name, [TensorRef.fromBytes("embed.weight", "BF16", SHAPE, DType.fromNumbers(values, "BF16"))])
    const base = modelOf("base", baseValues)
    const models = tuneValues.map((v, m) => modelOf(`ft${m}`, v))
    const run = (inputs: { base: Model.Model; models: ReadonlyArray<Model.Model> }, onGpu: boolean) =>
      stageOutput(Ties, { density: 0.3, weights: [0.3, 0.7, 1.1], lambda: 0.9, out_dtype: "float32" }, inputs, "embed.weight", 4 * n * 2, onGpu ? handle : undefined)
    await forcedRangeWise(async () => {
      const cpu = await run({ base, models }, false)
      const gpu = await run({ base, models }, true)
      const inputs = [baseValues, ...tuneValues].map((v) => packedOf(v, "BF16"))
      const [b, ...m] = inputs.map(floatsOf)
      const reference = await cpuRangeWise(planOf({ ...Kernel.presets.ties, weights: [0.3, 0.7, 1.1], density: 0.3, lambda: 0.9 }, 3), inputs)
      expect(cpu).toEqual(reference.out)
      compare(gpu, cpu, reference.prepared, b!, m)
      // Float32 arithmetic on the GPU rounds otherwise somewhere: proof that the stage ran there.
      expect(gpu.some((v, j) => v !== cpu[j])).toBe(true)
      const broken = tuneValues[1]!.slice()
      broken[70_001] = NaN
      const failing = { base, models: [models[0]!, modelOf("broken", broken), models[2]!] }
      const failure = (onGpu: boolean) => run(failing, onGpu).then(() => "no failure", (e: unknown) => String(e))
      const expected = await failure(false)
      expect(expected).toContain("first: NaN at element 70001")
      expect(await failure(true)).toBe(expected)
    })
  }, 120_000)
})
