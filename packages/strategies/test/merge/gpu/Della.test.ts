// DELLA on the GPU (src/merge/gpu/Della.ts): the kept set is the CPU's exactly — per-row ranks by
// magnitude (ties included), draws below the host's integer thresholds — for odd row lengths, rows
// of one entry, 1-D tensors, quantized task vectors full of equal magnitudes, whole and in chunks;
// the presets (della, della-linear: `rescale: l1`) and `unbiased` within `GpuTask.bound` of the CPU
// kernel (tiesCompare.ts), with the CPU's survivor counts.
import { beforeEach, describe, expect, it } from "vitest"
import * as GpuTask from "../../../src/merge/gpu/TaskArithmetic.ts"
import * as Prng from "../../../src/merge/kernels/Prng.ts"
import * as Sparsify from "../../../src/merge/kernels/Sparsify.ts"
import * as Kernel from "../../../src/merge/kernels/TaskArithmetic.ts"
import { family, normal, rng } from "../kernels/helpers.ts"
import { device, skipWithoutGpu, throughGpuMerge as run } from "./support.ts"
import { bytes, compare, cpuMerge, planOf } from "./tiesCompare.ts"

beforeEach((context) => skipWithoutGpu(context))

// The CPU's keep of one DELLA model: row probabilities from `Sparsify.dellaRow`, then the draws.
const cpuKept = (x: Float32Array, base: Float32Array, key: Prng.StreamKey, length: number, density: number, epsilon: number) => {
  const kept = new Uint8Array(x.length)
  const p = new Float64Array(length)
  const scratch = Sparsify.rowScratch()
  for (let r = 0; r < x.length; r += length) {
    Sparsify.dellaRow(x, base, r, length, density, epsilon, p, scratch)
    for (let q = 0; q < length; q++) kept[r + q] = +(Prng.uniform(key, r + q) < p[q]!)
  }
  return kept
}

// Task vectors on a grid of 1/8 (bf16-like): most magnitudes occur many times in a row, so the
// tie-break (the higher index ranks lower) decides most ranks.
const quantized = (seed: number, n: number) => Float32Array.from(normal(seed, n, 0.5), (v) => Math.round(v * 8) / 8 || 0.125)

describe("DELLA on the GPU", () => {
  it("the kept set is the CPU's: odd rows, rows of one, 1-D, ties in magnitude, chunks; survivor counts", async () => {
    const gpu = await device()
    const count = 3
    let cases = 0
    for (const shape of [[37, 101], [300, 1], [777], [9, 256], [6, 600]]) {
      const n = shape.reduce((a, b) => a * b, 1)
      const length = shape.length >= 2 ? n / shape[0]! : n
      // Base 0 and one model drawing (the others density 0: none kept): out = τ where kept and 0
      // where dropped, exactly, so the output is the kept set.
      const base = new Float32Array(n)
      for (const tie of [false, true]) {
        const taus = Array.from({ length: count }, (_, i) => (tie ? quantized(50 + i, n) : normal(60 + i, n, 0.05, 0.2)))
        expect(taus.every((t) => t.every((v) => v !== 0))).toBe(true)
        for (const [model, density, epsilon] of [[0, 0.3, 0.2], [1, 0.5, 0.49], [2, 0.8, 0.05]] as const) {
          const densities = Array.from({ length: count }, (_, i) => (i === model ? density : 0))
          const plan = planOf({ ...Kernel.presets["della-linear"], rescale: "none", weights: [1, 1, 1], density: densities, epsilon, seed: 11 + model }, shape, count, "layers.3.mlp")
          expect(GpuTask.supports(plan, gpu)).toBe(true)
          const expected = cpuKept(taus[model]!, base, Prng.key(11 + model, "layers.3.mlp", model), length, density, epsilon)
          const cpu = cpuMerge(plan, base, taus)
          const cpuPartial = Kernel.apply(cpu.prepared, new Float32Array(n), base, taus)!
          // 4 float32 arrays per element in 16 KiB bindings: 1024 elements, whole rows a chunk.
          for (const options of [{}, { maxBindingBytes: 16384 }]) {
            const result = await run(GpuTask.merge(gpu, plan, base, taus, options))
            expect(Uint8Array.from(result.out, (v) => +(v !== 0))).toEqual(expected)
            // The CPU kernel's bytes (1·τ and 0 + τ are exact on both).
            expect(bytes(result.out).equals(bytes(cpu.out))).toBe(true)
            expect(result.partial!.kept).toEqual(cpuPartial.kept)
            expect(cpuPartial.kept[model]).toBe(expected.reduce((a, b) => a + b, 0))
          }
          cases++
        }
      }
    }
    expect(cases).toBe(30)
  })

  it("della, della-linear (L1), unbiased and none, sum and count: within the bound of the CPU kernel, the CPU's survivors", async () => {
    const gpu = await device()
    const shape = [41, 123]
    const n = shape[0]! * shape[1]!
    const { base, models } = family(31, n, 4)
    const r = rng(31)
    const weights = Array.from({ length: 4 }, () => 0.25 + r())
    for (const params of [
      { ...Kernel.presets.della, weights, density: 0.4, epsilon: 0.15, seed: 3 },
      { ...Kernel.presets["della-linear"], weights: [1, 0.5, -0.4, 0.8], density: [0.2, 0.5, 0.7, 0.6], epsilon: 0.1, lambda: 1.3, seed: 4 },
      { ...Kernel.presets.della, weights, density: 0.5, epsilon: 0.3, rescale: "unbiased" as const, seed: 5 },
      { ...Kernel.presets.della, weights, density: 0.6, epsilon: 0.2, rescale: "none" as const, consensus: "count" as const, seed: 6 },
      { ...Kernel.presets["della-linear"], weights, density: [0.3, 1, 0, 0.5], epsilon: 0.2, rescale: "unbiased" as const, seed: 7 }
    ]) {
      const plan = planOf(params, shape, 4)
      expect(GpuTask.supports(plan, gpu)).toBe(true)
      const cpu = cpuMerge(plan, base, models)
      const cpuPartial = Kernel.apply(cpu.prepared, new Float32Array(n), base, models)!
      for (const options of [{}, { maxBindingBytes: 16384 }]) {
        const result = await run(GpuTask.merge(gpu, plan, base, models, options))
        expect(result.prepared.selectors).toEqual(cpu.prepared.selectors)
        const delta = GpuTask.factorError(plan, n)
        result.prepared.factors.forEach((f, i) => expect(Math.abs(f - cpu.prepared.factors[i]!)).toBeLessThanOrEqual(delta * Math.abs(cpu.prepared.factors[i]!)))
        // Survivors: integer counts of the same kept set.
        expect(result.partial!.kept).toEqual(cpuPartial.kept)
        compare(result.out, cpu.out, cpu.prepared, base, models)
      }
    }
  })
})
