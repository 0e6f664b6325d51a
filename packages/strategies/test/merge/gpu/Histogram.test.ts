// The |τ| histograms of the task-arithmetic kernels (src/merge/gpu/TaskShader.ts `histogramMain`:
// workgroup-private counters flushed once per workgroup for the high bits, per-thread runs of equal
// keys for the low bits) against counts made here on the CPU from
// the float32 bits of τ = float32(θ − base), bucket by bucket, on tensors whose magnitudes are
// mostly equal (τ on a 1/64 grid, a third of them 0), with magnitudes outside the private window
// (≥ 1, below 2⁻³¹) too; and the `tau_norm.*` diagnostics of the GPU paths against the CPU's
// within `TaskShader.tauNormError`, with `kept.*` and `agreement` equal.
import { DType } from "@crucible/core"
import { Effect, Result } from "effect"
import { beforeEach, describe, expect, it } from "vitest"
import * as Device from "../../../src/merge/gpu/Device.ts"
import * as GpuRange from "../../../src/merge/gpu/RangeWise.ts"
import * as GpuTask from "../../../src/merge/gpu/TaskArithmetic.ts"
import * as TaskShader from "../../../src/merge/gpu/TaskShader.ts"
import type { PackedInput } from "../../../src/merge/kernels/PackedInput.ts"
import * as PackedParallel from "../../../src/merge/kernels/PackedParallel.ts"
import * as Select from "../../../src/merge/kernels/Select.ts"
import * as Kernel from "../../../src/merge/kernels/TaskArithmetic.ts"
import * as TaskDiagnostics from "../../../src/merge/kernels/TaskDiagnostics.ts"
import * as TaskStatistics from "../../../src/merge/kernels/TaskStatistics.ts"
import { family, rng } from "../kernels/helpers.ts"
import { device, skipWithoutGpu } from "./support.ts"

beforeEach((context) => skipWithoutGpu(context))

// gpu/TaskArithmetic.ts's histogram kernel: model 0 of [base, θ] at stride n.
const shader = GpuTask.histogramShader

// τ on a 1/64 grid (a third 0), a few τ ≥ 1 and below 2⁻³¹ (outside the private window).
const quantized = (seed: number, n: number) => {
  const { base, models } = family(seed, n, 1)
  const r = rng(seed)
  const model = Float32Array.from(base, (b, j) => {
    const u = r()
    if (u < 0.33) return b
    if (u < 0.35) return b + 2 + Math.round(r() * 4)
    if (u < 0.37) return b === 0 ? 2 ** -40 : b + b * 2 ** -30
    return b + Math.round((models[0]![j]! - b) * 64) / 64
  })
  return { base, model }
}

const keysOf = (base: Float32Array, model: Float32Array) => {
  const tau = Float32Array.from(model, (v, j) => v - base[j]!)
  return Uint32Array.from(new Uint32Array(tau.buffer), (k) => k & 0x7fffffff)
}

describe("GPU |τ| histograms (workgroup counters)", () => {
  it("every mode's counts equal the CPU's, bucket by bucket, on tensors of equal magnitudes", async () => {
    const gpu = await device()
    const n = 300_007
    const { base, model } = quantized(3, n)
    const keys = keysOf(base, model)
    const high = new Uint32Array(Select.HIGH_BUCKETS)
    for (const k of keys) high[k >>> 16]!++
    // The low pass in the most populated non-zero high buckets (many equal magnitudes: runs of one key), and in bucket 0.
    const busiest = [...high.keys()].filter((b) => b > 0).sort((a, b) => high[b]! - high[a]!).slice(0, 2)
    const expected: Array<[number, number, Uint32Array]> = [[0, 0, high]]
    for (const h of [...busiest, 0]) {
      const low = new Uint32Array(Select.LOW_BUCKETS)
      for (const k of keys) if (k >>> 16 === h) low[k & 0xffff]!++
      expected.push([1, h, low])
    }
    expect(Math.max(...expected[1]![2])).toBeGreaterThan(1000)
    // Some counts are outside the window: the global-atomic path runs too.
    expect(high.slice(TaskShader.WINDOW_START + TaskShader.WINDOW).some((c) => c > 0)).toBe(true)
    expect(high[0]).toBeGreaterThan(n / 4)
    const got = await Effect.runPromise(Device.scoped(gpu, ({ storage, uniform }) =>
      Effect.gen(function* () {
        const pipe = yield* Device.pipeline(gpu, "test.histogram", shader)
        const x = storage(8 * n, "test.x")
        Device.upload(gpu, x, base)
        Device.upload(gpu, x, model, 4 * n)
        const counts = storage(4 * Select.LOW_BUCKETS, "test.counts")
        const params = uniform(new Uint32Array(8), "test.params")
        return yield* Effect.forEach(expected, ([mode, at, buckets]) =>
          Effect.gen(function* () {
            gpu.queue.writeBuffer(counts, 0, new Uint32Array(buckets.length))
            gpu.queue.writeBuffer(params, 0, new Uint32Array([n, n, 0, mode, at, 0, 0, 0]))
            yield* Device.run(gpu, "test.histogram", (e) => Device.dispatch(e, gpu, pipe, [params, x, counts], TaskShader.histogramThreads(n)))
            return new Uint32Array(yield* Device.readBack(gpu, counts, 4 * buckets.length, "test.histogram"))
          }))
      })))
    expected.forEach(([, , buckets], i) => expect(got[i]).toEqual(buckets))
  })

  it("TIES cuts are Select.cuts' (ranks inside groups of equal magnitudes)", async () => {
    const gpu = await device()
    const n = 50_021
    const { base, model } = quantized(5, n)
    for (const density of [0.1, 0.5, 0.64, 0.9]) {
      const plan = Result.getOrThrow(Kernel.plan({ ...Kernel.presets.ties, weights: [1], density }, [n], 1, "t"))
      const cpu = TaskStatistics.prepare(plan, base, [model])
      const result = await Effect.runPromise(GpuTask.merge(gpu, plan, base, [model]))
      expect(result.prepared.selectors).toEqual(cpu.selectors)
    }
  })
})

describe("tau_norm diagnostics on the GPU", () => {
  const expectDiagnostics = (gpu: TaskDiagnostics.Diagnostics, cpu: TaskDiagnostics.Diagnostics, n: number) => {
    expect(Object.keys(gpu).sort()).toEqual(Object.keys(cpu).sort())
    for (const [key, value] of Object.entries(cpu)) {
      if (!key.startsWith("tau_norm.")) expect(gpu[key]).toBe(value)
      else {
        expect(value).toBeGreaterThan(0)
        // The stated bound (float32 block sums against the CPU's float64 sum, see TaskShader.tauNormError).
        expect(Math.abs(gpu[key]! - value)).toBeLessThanOrEqual(TaskShader.tauNormError(n, value))
      }
    }
  }

  it("gpu/TaskArithmetic: the CPU's kept, agreement and tau_norm (within the bound), several chunks", async () => {
    const gpu = await device()
    const n = 40_009
    const { base, models } = family(7, n, 3)
    for (const params of [
      { ...Kernel.presets.ties, weights: [0.5, 1, 0.8], density: 0.4 },
      { ...Kernel.presets["dare-ties"], weights: [1, 1, 1], density: 0.5, seed: 3 },
      { ...Kernel.presets.breadcrumbs, weights: [1, 0.5, 0.25], density: 0.4, gamma: 0.05 }
    ]) {
      const plan = Result.getOrThrow(Kernel.plan(params, [n], 3, "t"))
      const prepared = TaskStatistics.prepare(plan, base, models)
      const partial = Kernel.apply(prepared, new Float32Array(n), base, models)!
      const cpu = TaskDiagnostics.summarize(plan, [partial], n)
      // 4 chunks: the partials of several chunks are added.
      const result = await Effect.runPromise(GpuTask.merge(gpu, plan, base, models, { maxBindingBytes: 4 * 4 * 12_288 }))
      expectDiagnostics(TaskDiagnostics.summarize(plan, [result.partial!], n), cpu, n)
    }
  })

  it("gpu/RangeWise: bf16 inputs in ranges and chunks, the CPU range-wise path's diagnostics (tau_norm within the bound)", async () => {
    const gpu = await device()
    const n = 70_001
    const { base, models } = family(11, n, 2)
    const inputs: Array<PackedInput> = [base, ...models].map((v) => ({ bytes: DType.fromNumbers(v, "BF16"), dtype: "BF16" }))
    const plan = Result.getOrThrow(Kernel.plan({ ...Kernel.presets.ties, weights: [1, 0.7], density: 0.3 }, [n], 2, "t"))
    const cpu = await Effect.runPromise(Effect.gen(function* () {
      const runner = PackedParallel.runner(undefined)
      const scanned = yield* PackedParallel.scan(runner, plan, inputs, n)
      const prepared = yield* PackedParallel.prepare(runner, plan, inputs, n, scanned)
      const { parts } = yield* PackedParallel.apply(runner, prepared, inputs, new Float32Array(n), 0, n)
      return TaskDiagnostics.summarize(plan, parts, n)
    }))
    const parts = await Effect.runPromise(Effect.gen(function* () {
      const prepared = yield* GpuRange.prepare(gpu, plan, inputs)
      // Three ranges, each in chunks of 8192 elements.
      return yield* Effect.forEach([[0, 30_000], [30_000, 65_536], [65_536, n]] as const, ([start, end]) =>
        Effect.map(GpuRange.apply(gpu, prepared, inputs, start, end, { maxBindingBytes: 3 * 2 * 8192, squares: true }), (a) => a.partial))
    }))
    expectDiagnostics(TaskDiagnostics.summarize(plan, parts, n), cpu, n)
    // Without `squares` the pass is skipped (no Σ τ²).
    const plain = await Effect.runPromise(Effect.flatMap(GpuRange.prepare(gpu, plan, inputs), (p) => GpuRange.apply(gpu, p, inputs, 0, 100)))
    expect(plain.partial.squares.length).toBe(0)
  })
})
