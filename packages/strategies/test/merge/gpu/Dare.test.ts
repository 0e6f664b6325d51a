// DARE on the GPU: the kept set is the CPU's draws exactly (any seed, tensor name, density,
// chunking), results within `GpuTask.bound` of the CPU kernel, and merge/dare-ties as a stage.
import { DType, Model, TensorRef } from "@crucible/core"
import { Effect, Layer } from "effect"
import { beforeEach, describe, expect, it } from "vitest"
import * as GpuTask from "../../../src/merge/gpu/TaskArithmetic.ts"
import { GpuMerge } from "../../../src/merge/GpuMerge.ts"
import * as Prng from "../../../src/merge/kernels/Prng.ts"
import * as Kernel from "../../../src/merge/kernels/TaskArithmetic.ts"
import * as TaskStatistics from "../../../src/merge/kernels/TaskStatistics.ts"
import { DareLinear, DareTies, Della } from "../../../src/merge/TaskArithmetic.ts"
import { decodeParams } from "../../decodeParams.ts"
import { family, normal, rng } from "../kernels/helpers.ts"
import { gpuHandle, device, skipWithoutGpu } from "./support.ts"
import { bytes, compare, cpuMerge, planOf } from "./tiesCompare.ts"

beforeEach((context) => skipWithoutGpu(context))

describe("DARE on the GPU", () => {
  it("the kept set is the CPU's draws: seeds (both 32-bit halves), tensor names, model streams, densities, chunked runs", async () => {
    const gpu = await device()
    const n = 30_000
    // Base 0 and one model drawing (the others density 0): out = τ where kept and 0 where dropped, exactly
    // (1·τ and 0 + τ are exact in float32 and float64), so the output is the kept set.
    const base = new Float32Array(n)
    const count = 3
    const taus = Array.from({ length: count }, (_, i) => normal(100 + i, n, 0.05, 0.2))
    expect(taus.every((t) => t.every((v) => v !== 0))).toBe(true)
    let cases = 0
    for (const seed of [0, 7, 2 ** 40 + 3]) {
      for (const name of ["t", "layers.0.weight", "ünïcode.ñame"]) {
        for (const [model, density] of [[0, 0.1], [1, 1 / 3], [2, 0.9]] as const) {
          const densities = Array.from({ length: count }, (_, i) => (i === model ? density : 0))
          const plan = planOf({ ...Kernel.presets["dare-linear"], rescale: "none", weights: [1, 1, 1], density: densities, seed }, [n], count, name)
          expect(GpuTask.supports(plan, gpu)).toBe(true)
          const key = Prng.key(seed, name, model)
          const expected = Uint8Array.from({ length: n }, (_, j) => +(Prng.uniform(key, j) < density))
          const whole = await Effect.runPromise(GpuTask.merge(gpu, plan, base, taus))
          const kept = Uint8Array.from(whole.out, (v) => +(v !== 0))
          expect(kept).toEqual(expected)
          expect(bytes(whole.out).equals(bytes(Float32Array.from(taus[model]!, (v, j) => (expected[j] ? v : 0))))).toBe(true)
          // The survivors the diagnostics report: the CPU's count.
          const survivors = expected.reduce((a, b) => a + b, 0)
          expect(Array.from(whole.partial!.kept)).toEqual(densities.map((_, i) => (i === model ? survivors : 0)))
          // The CPU kernel: the same bytes.
          expect(bytes(cpuMerge(plan, base, taus).out).equals(bytes(whole.out))).toBe(true)
          // 4 float32 arrays per element in 16 KiB bindings: 1024 elements a chunk, 30 chunks; the draws
          // are indexed by the tensor index, so every chunk keeps what the whole does.
          if (cases++ % 3 === 0) {
            const chunked = await Effect.runPromise(GpuTask.merge(gpu, plan, base, taus, { maxBindingBytes: 16384 }))
            expect(bytes(chunked.out).equals(bytes(whole.out))).toBe(true)
            expect(chunked.partial!.kept).toEqual(whole.partial!.kept)
          }
        }
      }
    }
  })

  it("dare-linear, dare-ties (L1, unbiased, none; sum and count consensus), TIES with L1: within the bound of the CPU kernel", async () => {
    const gpu = await device()
    const n = 20_011
    const { base, models } = family(21, n, 4)
    const r = rng(21)
    const weights = Array.from({ length: 4 }, () => 0.25 + r())
    for (const params of [
      { ...Kernel.presets["dare-linear"], weights, density: 0.3, seed: 5 },
      { ...Kernel.presets["dare-linear"], weights: [1, 0.5, -0.4, 0.8], density: [0.1, 0.5, 0.7, 0.95], lambda: 1.3, normalize: true, seed: 6 },
      { ...Kernel.presets["dare-ties"], weights, density: 0.4, seed: 7 },
      { ...Kernel.presets["dare-ties"], weights, density: [0.2, 0.9, 0.5, 0.6], rescale: "unbiased" as const, normalize: true, seed: 8 },
      { ...Kernel.presets["dare-ties"], weights, density: 0.5, rescale: "none" as const, consensus: "count" as const, seed: 9 },
      { ...Kernel.presets.ties, weights, density: 0.3, rescale: "l1" as const }
    ]) {
      const plan = planOf(params, [n], 4)
      expect(GpuTask.supports(plan, gpu)).toBe(true)
      const cpu = cpuMerge(plan, base, models)
      const cpuPartial = Kernel.apply(cpu.prepared, new Float32Array(n), base, models)!
      for (const chunked of [false, true]) {
        const result = await Effect.runPromise(GpuTask.merge(gpu, plan, base, models, chunked ? { maxBindingBytes: 16384 } : {}))
        expect(result.prepared.selectors).toEqual(cpu.prepared.selectors)
        // The L1 factors: float32 block sums on the GPU, within GpuTask.factorError of the CPU's float64.
        const delta = GpuTask.factorError(plan, n)
        result.prepared.factors.forEach((f, i) => expect(Math.abs(f - cpu.prepared.factors[i]!)).toBeLessThanOrEqual(delta * Math.abs(cpu.prepared.factors[i]!)))
        if (plan.rescale === "l1") expect(delta).toBeGreaterThan(0)
        // Survivors of the draws: integer counts of the same kept set.
        expect(result.partial!.kept).toEqual(cpuPartial.kept)
        compare(result.out, cpu.out, cpu.prepared, base, models)
      }
    }
  })

  it("DELLA is a GPU stage too (its kernel: Della.test.ts), but a row longer than one binding holds goes to the CPU", async () => {
    const gpu = await device()
    const plan = planOf({ ...Kernel.presets.della, weights: [1, 1], density: 0.5 }, [64, 8], 2)
    expect(GpuTask.supports(plan, gpu)).toBe(true)
    // A 1-D tensor is one row: past the binding limit its rank sort cannot hold it (a plan only: no data).
    const huge = Math.floor(gpu.limits.maxStorageBufferBindingSize / 4) + 1
    expect(GpuTask.supports(planOf({ ...Kernel.presets.della, weights: [1, 1], density: 0.5 }, [huge], 2), gpu)).toBe(false)
    expect(GpuTask.supports(planOf({ ...Kernel.presets.ties, weights: [1, 1], density: 0.5 }, [huge], 2), gpu)).toBe(true)
    expect(Della.resources?.device).toBe("any")
    expect(DareTies.resources?.device).toBe("any")
    expect(DareLinear.resources?.device).toBe("any")
  })
})

const SHAPES: Record<string, Array<number>> = { "layers.0.weight": [96, 80], "layers.0.bias": [96] }
const N = 3
const data = Object.fromEntries(Object.entries(SHAPES).map(([t, s], k) => [t, family(k + 1, s[0]! * (s[1] ?? 1), N)]))
const modelOf = (name: string, pick: (f: { base: Float32Array; models: Array<Float32Array> }) => Float32Array) =>
  Model.make(name, Object.entries(SHAPES).map(([t, s]) => TensorRef.fromBytes(t, "F32", s, DType.fromNumbers(pick(data[t]!), "F32"))))
const context = { id: "m", resolvePath: (p: string) => p, runDir: "/nonexistent", cacheDir: "/nonexistent", dryRun: false }

const runStage = async (params: object, gpu: boolean) => {
  const layer = gpu ? GpuMerge.fromHandle(await gpuHandle()) : Layer.empty
  const inputs = { base: modelOf("base", (f) => f.base), models: Array.from({ length: N }, (_, i) => modelOf(`ft${i}`, (f) => f.models[i]!)) }
  return Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const merged = yield* DareTies.run({ ...context, kind: "merge/dare-ties", params: decodeParams(DareTies, params as never), inputs: inputs as never })
    const out: Record<string, Float32Array> = {}
    for (const t of merged.tensors.values()) out[t.name] = new Float32Array((yield* t.read()).slice().buffer)
    return out
  })).pipe(Effect.provide(layer as Layer.Layer<GpuMerge>)))
}

describe("merge/dare-ties with GpuMerge", () => {
  it("within the bound of the CPU stage, on the CPU stage's draws", async () => {
    const params = { density: 0.4, seed: 3, weights: [0.5, 1, 0.75] }
    const cpu = await runStage(params, false)
    const gpu = await runStage(params, true)
    let differing = 0
    for (const [name, shape] of Object.entries(SHAPES)) {
      const { base: b, models: m } = data[name]!
      const plan = planOf({ ...Kernel.presets["dare-ties"], weights: params.weights, density: params.density, seed: params.seed }, shape, N, name)
      const reference = cpuMerge(plan, b, m)
      // The CPU stage is the CPU kernel; the GPU stage is within the bound of it.
      expect(cpu[name]).toEqual(reference.out)
      expect(TaskStatistics.prepare(plan, b, m).selectors.every((s) => s.kind === "random")).toBe(true)
      differing += gpu[name]!.filter((v, j) => v !== cpu[name]![j]).length
      compare(gpu[name]!, cpu[name]!, reference.prepared, b, m)
    }
    // Elements where the GPU's float32 arithmetic rounds otherwise: proof that the GPU ran.
    expect(differing).toBeGreaterThan(0)
  })
})
