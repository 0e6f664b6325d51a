// merge/linear with GpuMerge provided sums each streamed range on the GPU (gpu/WeightedSum.ts) and
// agrees with the CPU stage within the weighted sum's stated bound; without it the stage is the CPU's
// (the StreamSum tests prove its bytes). Real Dawn device on lavapipe; skipped without one, except in CI.
import { DType, Model, TensorRef } from "@crucible/core"
import { Effect, Layer, Tracer } from "effect"
import { beforeEach, describe, expect, it } from "vitest"
import * as GpuSum from "../../../src/merge/gpu/WeightedSum.ts"
import { GpuMerge } from "../../../src/merge/GpuMerge.ts"
import { Linear } from "../../../src/merge/Linear.ts"
import * as StreamSum from "../../../src/merge/StreamSum.ts"
import { decodeParams } from "../../decodeParams.ts"
import { gpuMissing, skipWithoutGpu } from "../../support/Gpu.ts"
import { device, gpuHandle } from "./support.ts"
import { recordingTracer } from "../../support/Spans.ts"

const missing = gpuMissing()
beforeEach((context) => skipWithoutGpu(context, missing))

const rand = (seed: number, n: number) => {
  let s = seed >>> 0
  return Float64Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return (s / 4294967296 - 0.5) * 4
  })
}

const SHAPES: Record<string, Array<number>> = { "layers.0.weight": [300, 700], "layers.0.bias": [700] }
const WEIGHTS = [0.5, 0.3, 0.2]

/** Three models stored as `dtype`, with their values as stored (decoded to float64). */
const modelsOf = (dtype: "BF16" | "F32") => {
  const values: Record<string, Array<Float64Array>> = {}
  const models = WEIGHTS.map((_, i) =>
    Model.make(`m${i}`, Object.entries(SHAPES).map(([name, shape], k) => {
      const bytes = DType.fromNumbers(rand(7 + 13 * i + k, shape.reduce((a, b) => a * b, 1)), dtype)
      ;(values[name] ??= []).push(DType.toFloat64(bytes, dtype))
      return TensorRef.fromBytes(name, dtype, shape, bytes)
    })))
  return { models, values }
}

const context = { id: "m", kind: "merge/linear", resolvePath: (p: string) => p, runDir: "/nonexistent", cacheDir: "/nonexistent", dryRun: false }

/** Runs the stage (with GpuMerge when `gpu`), reads every tensor under its own span, and returns the bytes and the spans' attributes. */
const runLinear = async (models: ReadonlyArray<Model.Model>, params: object, gpu: boolean) => {
  const { tracer, spans } = recordingTracer()
  const layer = gpu ? GpuMerge.fromHandle(await gpuHandle()) : Layer.empty
  const out = await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const merged = yield* Linear.run({ ...context, params: decodeParams(Linear, params as never), inputs: { models } })
    const out: Record<string, { dtype: DType.DType; bytes: Uint8Array }> = {}
    for (const t of merged.tensors.values()) out[t.name] = { dtype: t.dtype, bytes: (yield* t.read().pipe(Effect.withSpan(`read ${t.name}`))).slice() }
    return out
  })).pipe(Effect.provide(layer as Layer.Layer<GpuMerge>), Effect.provide(Layer.succeed(Tracer.Tracer, tracer))))
  const devices = spans.filter((s) => s.name.startsWith("read ")).map((s) => s.attributes.get("crucible.merge.device"))
  return { out, devices }
}

/**
 * The CPU's float32 sum (float64, left to right, rounded once: StreamSum's kernels) and the bound
 * of the GPU's float32 sum around it, `WeightedSum.bound(N, Σ|cᵢxᵢ|)`, per element.
 */
const reference = (inputs: ReadonlyArray<Float64Array>, c: ReadonlyArray<number>) => {
  const n = inputs[0]!.length
  const cpu = new Float64Array(n)
  const bound = new Float64Array(n)
  for (let j = 0; j < n; j++) {
    let acc = 0
    let terms = 0
    for (let i = 0; i < inputs.length; i++) {
      acc += c[i]! * inputs[i]![j]!
      terms += Math.abs(c[i]! * inputs[i]![j]!)
    }
    cpu[j] = Math.fround(acc)
    bound[j] = GpuSum.bound(inputs.length, terms)
  }
  return { cpu, bound }
}

const scale = WEIGHTS.map((w) => w / WEIGHTS.reduce((a, b) => a + b, 0))

describe("merge/linear with GpuMerge", () => {
  it("f32 models: within the weighted sum's bound of the CPU stage, and the GPU ran (it rounds otherwise somewhere)", async () => {
    const { models, values } = modelsOf("F32")
    const cpu = await runLinear(models, { weights: WEIGHTS }, false)
    const gpu = await runLinear(models, { weights: WEIGHTS }, true)
    expect(cpu.devices.every((d) => d === undefined)).toBe(true)
    expect(gpu.devices).toEqual(Object.keys(SHAPES).map(() => "gpu"))
    let differing = 0
    for (const name of Object.keys(SHAPES)) {
      const ref = reference(values[name]!, scale)
      const c = new Float32Array(cpu.out[name]!.bytes.buffer)
      const g = new Float32Array(gpu.out[name]!.bytes.buffer)
      expect(gpu.out[name]!.dtype).toBe("F32")
      for (let j = 0; j < c.length; j++) {
        // The CPU stage is the float64 sum rounded once; the GPU's is within WeightedSum.bound of it.
        if (c[j] !== ref.cpu[j]) expect.fail(`${name}[${j}]: cpu ${c[j]} vs reference ${ref.cpu[j]}`)
        if (!(Math.abs(g[j]! - c[j]!) <= ref.bound[j]!)) expect.fail(`${name}[${j}]: gpu ${g[j]} vs cpu ${c[j]} beyond ${ref.bound[j]}`)
        if (g[j] !== c[j]) differing++
      }
    }
    expect(differing).toBeGreaterThan(0)
  })

  it("bf16 models: the bf16 output is the CPU's f32 sum ± the bound, rounded to bf16 (nearest even) as the CPU encodes", async () => {
    const { models, values } = modelsOf("BF16")
    const cpu = await runLinear(models, { weights: WEIGHTS }, false)
    const gpu = await runLinear(models, { weights: WEIGHTS }, true)
    expect(gpu.devices).toEqual(Object.keys(SHAPES).map(() => "gpu"))
    for (const name of Object.keys(SHAPES)) {
      const ref = reference(values[name]!, scale)
      expect(gpu.out[name]!.dtype).toBe("BF16")
      const c = DType.toFloat64(cpu.out[name]!.bytes, "BF16")
      const g = DType.toFloat64(gpu.out[name]!.bytes, "BF16")
      // The CPU stage encodes its float32 sum to bf16, nearest even.
      expect(cpu.out[name]!.bytes).toEqual(DType.fromNumbers(Float32Array.from(ref.cpu), "BF16"))
      // The GPU's float32 sum g₃₂ is within b of the CPU's s₃₂ (WeightedSum.bound), and rounding to
      // nearest is monotone, so bf16(g₃₂) lies in [bf16(s₃₂ − b), bf16(s₃₂ + b)] (float64 → bf16,
      // rounded once by DType.fromNumbers): at most one bf16 step from the CPU's output.
      const lo = DType.toFloat64(DType.fromNumbers(ref.cpu.map((s, j) => s - ref.bound[j]!), "BF16"), "BF16")
      const hi = DType.toFloat64(DType.fromNumbers(ref.cpu.map((s, j) => s + ref.bound[j]!), "BF16"), "BF16")
      for (let j = 0; j < g.length; j++) {
        if (!(g[j]! >= lo[j]! && g[j]! <= hi[j]!)) expect.fail(`${name}[${j}]: gpu ${g[j]} outside [${lo[j]}, ${hi[j]}] (cpu ${c[j]})`)
      }
    }
  })

  it("a range whose float32 sum overflows on the GPU (3e38 + 3e38 − 3e38) is summed again on the CPU: finite, the CPU's bytes", async () => {
    const models = [3e38, 3e38, -3e38].map((v, i) => Model.make(`m${i}`, [TensorRef.fromBytes("w", "F32", [512], DType.fromNumbers(new Float32Array(512).fill(v), "F32"))]))
    const params = { weights: [1, 1, 1], normalize: false }
    // The premise: the GPU's float32 partial sum 3e38 + 3e38 overflows.
    const onGpu = await Effect.runPromise(GpuSum.weightedSum(await device(), { dtype: "F32", arrays: [3e38, 3e38, -3e38].map((v) => new Float32Array(4).fill(v)) }, [1, 1, 1]))
    expect(onGpu[0]).toBe(Infinity)
    const cpu = await runLinear(models, params, false)
    const gpu = await runLinear(models, params, true)
    expect(gpu.out["w"]!.bytes).toEqual(cpu.out["w"]!.bytes)
    expect(new Float32Array(gpu.out["w"]!.bytes.buffer)[0]).toBe(Math.fround(3e38))
    // allow_nonfinite turns off the refusal of non-finite values, not the GPU's overflow fallback: same bytes.
    const allowed = await runLinear(models, { ...params, allow_nonfinite: true }, true)
    expect(allowed.out["w"]!.bytes).toEqual(cpu.out["w"]!.bytes)
  })

  it("a range larger than one storage binding runs in chunks, within the bound of the float64 sum", async () => {
    const dev = await device()
    const n = 100_000
    const inputs = WEIGHTS.map((_, i) => Float32Array.from(rand(101 + i, n)))
    const refs = inputs.map((values, i) => TensorRef.fromBytes(`x${i}`, "F32", [n], DType.fromNumbers(values, "F32")))
    // 64 KiB bindings: 5,376 elements of three float32 inputs a chunk, so 19 chunks.
    const bytes = await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
      const stream = StreamSum.make([refs], scale, yield* Effect.scope, { gpu: { device: dev, maxBindingBytes: 64 * 1024 } })
      return yield* stream.sum(0, { start: 0, end: n }, "F32")
    })))
    const sum = new Float32Array(bytes.buffer, bytes.byteOffset, n)
    const ref = reference(inputs.map((x) => Float64Array.from(x)), scale)
    for (let j = 0; j < n; j++) {
      if (!(Math.abs(sum[j]! - ref.cpu[j]!) <= ref.bound[j]!)) expect.fail(`[${j}]: gpu ${sum[j]} vs cpu ${ref.cpu[j]} beyond ${ref.bound[j]}`)
    }
  })
})
