import { Effect } from "effect"
import { beforeEach, describe, expect, it } from "vitest"
import { DType } from "@crucible/core"
import * as GpuSum from "../../../src/merge/gpu/WeightedSum.ts"
import { weightedSum as cpuSum } from "../../../src/merge/kernels/WeightedSum.ts"
import { normal, rng } from "../kernels/helpers.ts"
import { device, skipWithoutGpu } from "./support.ts"

beforeEach((context) => skipWithoutGpu(context))

/** Checks every element against the float64 sum and the CPU kernel within `GpuSum.bound` (see WeightedSum.ts). */
const expectWithinBound = (gpu: Float32Array, inputs: ReadonlyArray<ArrayLike<number>>, c: ReadonlyArray<number>, cpu?: Float32Array) => {
  let worst = 0
  for (let j = 0; j < gpu.length; j++) {
    let exact = 0
    let terms = 0
    for (let i = 0; i < inputs.length; i++) {
      exact += c[i]! * inputs[i]![j]!
      terms += Math.abs(c[i]! * inputs[i]![j]!)
    }
    const b = GpuSum.bound(inputs.length, terms)
    // Against the float64 reference: the GPU's own share of the bound ((N + 1)·u·Σ|cx|) suffices.
    const fromExact = Math.abs(gpu[j]! - exact)
    if (!(fromExact <= b)) throw new Error(`element ${j}: gpu ${gpu[j]} vs exact ${exact}: ${fromExact} > ${b}`)
    if (cpu !== undefined && !(Math.abs(gpu[j]! - cpu[j]!) <= b)) throw new Error(`element ${j}: gpu ${gpu[j]} vs cpu ${cpu[j]} > ${b}`)
    worst = Math.max(worst, terms === 0 ? 0 : fromExact / b)
  }
  return worst
}

describe("GPU weighted sum", () => {
  it("float32: within the bound of the float64 sum and of the CPU kernel, also with cancellations", async () => {
    const gpu = await device()
    const r = rng(7)
    for (const count of [1, 2, 3, 5, 8]) {
      const n = 10_001
      const inputs = Array.from({ length: count }, (_, i) => normal(100 + i, n))
      // Cancellations: the second input nearly the negative of the first, weights of opposite signs.
      if (count >= 2) inputs[1] = Float32Array.from(inputs[0]!, (v, j) => -v + 1e-4 * Math.sin(j))
      const c = Array.from({ length: count }, () => Math.fround(r() * 2 - 0.5))
      if (count >= 2) c[1] = c[0]!
      const out = await Effect.runPromise(GpuSum.weightedSum(gpu, { dtype: "F32", arrays: inputs }, c))
      const cpu = new Float32Array(n)
      cpuSum(cpu, inputs, c)
      expectWithinBound(out, inputs, c, cpu)
    }
  })

  it("bf16 and f16 inputs are decoded in the shader (normal, subnormal, signed zero values)", async () => {
    const gpu = await device()
    for (const dtype of ["BF16", "F16"] as const) {
      const n = 4099
      const values = [normal(1, n, 3), normal(2, n, 0.01)]
      // f16 subnormals (< 6.1e-5) and zeros of both signs in the first input's head.
      values[0]!.set([0, -0, 3e-6, -5.96e-8, 65504, -2.5e-7])
      const raw = values.map((v) => new Uint16Array(DType.fromNumbers(v, dtype).buffer.slice(0)))
      const decoded = raw.map((w) => DType.toFloat64(new Uint8Array(w.buffer), dtype))
      const c = [0.75, -1.25]
      const out = await Effect.runPromise(GpuSum.weightedSum(gpu, { dtype, arrays: raw }, c))
      const cpu = new Float32Array(n)
      cpuSum(cpu, decoded.map((d) => Float32Array.from(d)), c)
      expectWithinBound(out, decoded, c, cpu)
      // The zeros of the first input leave the second's share alone.
      expect(out[0]).toBe(Math.fround(-1.25 * decoded[1]![0]!))
    }
  })

  it("a tensor larger than one binding runs in chunks (forced small, and past the device's own limit)", async () => {
    const gpu = await device()
    const inputs = [normal(3, 5003), normal(4, 5003), normal(5, 5003)]
    const c = [0.5, 0.25, -1]
    // 4 KiB bindings: 3 inputs × 256 elements per chunk, 20 chunks, the last one partial.
    const out = await Effect.runPromise(GpuSum.weightedSum(gpu, { dtype: "F32", arrays: inputs }, c, { maxBindingBytes: 4096 }))
    expectWithinBound(out, inputs, c)
    // One float32 input a little over the device's binding limit (128 MiB on lavapipe): two chunks.
    const limit = gpu.limits.maxStorageBufferBindingSize
    const big = new Float32Array(limit / 4 + 1000)
    for (let j = 0; j < big.length; j += 1) big[j] = (j % 1021) - 510
    const summed = await Effect.runPromise(GpuSum.weightedSum(gpu, { dtype: "F32", arrays: [big] }, [0.5]))
    // c·x with c = 0.5 is exact in float32: the bound is 0 here, so equality.
    for (let j = 0; j < big.length; j += 1) if (summed[j] !== big[j]! * 0.5) throw new Error(`element ${j}: ${summed[j]} ≠ ${big[j]! * 0.5}`)
  })

  it("one context (make) reused across calls: the same bits as a fresh one, any dtype, length or count, inputs in shared memory, into a given array", async () => {
    const gpu = await device()
    const context = GpuSum.make(gpu, { maxBindingBytes: 8192 })
    try {
      // Lengths that grow and shrink (the buffers grow once, then stale bytes stay behind), odd
      // 16-bit lengths (the last element in a padded word), counts 1–5, several chunks each.
      const cases = [
        { dtype: "F32", n: 700, count: 2 }, { dtype: "BF16", n: 3001, count: 3 }, { dtype: "F32", n: 257, count: 5 },
        { dtype: "F16", n: 999, count: 1 }, { dtype: "BF16", n: 5, count: 4 }, { dtype: "F32", n: 4099, count: 3 }
      ] as const
      for (const [k, { dtype, n, count }] of cases.entries()) {
        const values = Array.from({ length: count }, (_, i) => normal(20 + 7 * k + i, n, 2))
        // Each input at a word-aligned place of one SharedArrayBuffer, as the merge arena's slots are.
        const shared = new SharedArrayBuffer(count * (n + 2) * 4)
        const inputs: GpuSum.Inputs = dtype === "F32"
          ? {
            dtype,
            arrays: values.map((v, i) => {
              const floats = new Float32Array(shared, i * (n + 2) * 4, n)
              floats.set(v)
              return floats
            })
          }
          : {
            dtype,
            arrays: values.map((v, i) => {
              const words = new Uint16Array(shared, i * (n + 2) * 4, n)
              words.set(new Uint16Array(DType.fromNumbers(v, dtype).buffer.slice(0)))
              return words
            })
          }
        const c = Array.from({ length: count }, (_, i) => Math.fround(0.3 - 0.2 * i))
        const target = new Float32Array(n + 3).fill(Number.NaN)
        const reused = await Effect.runPromise(context.sum(inputs, c, target.subarray(0, n)))
        // A fresh context (GpuSum.weightedSum) on copies in ordinary memory: the same kernel and
        // chunks, so the same bits; and the float64 sum within the bound.
        const copies: GpuSum.Inputs = inputs.dtype === "F32" ? { dtype: "F32", arrays: inputs.arrays.map((a) => a.slice()) } : { dtype: inputs.dtype, arrays: inputs.arrays.map((a) => a.slice()) }
        const fresh = await Effect.runPromise(GpuSum.weightedSum(gpu, copies, c, { maxBindingBytes: 8192 }))
        expect(reused.buffer).toBe(target.buffer)
        for (const a of inputs.arrays) expect(a.buffer).toBeInstanceOf(SharedArrayBuffer)
        expect(Array.from(reused)).toEqual(Array.from(fresh))
        // Past the given length nothing is written.
        expect(Array.from(target.subarray(n))).toEqual([Number.NaN, Number.NaN, Number.NaN])
        const decoded = inputs.dtype === "F32" ? inputs.arrays : inputs.arrays.map((w) => DType.toFloat64(new Uint8Array(w.buffer, w.byteOffset, w.byteLength).slice(), dtype))
        expectWithinBound(reused, decoded, c)
      }
    } finally {
      context.destroy()
    }
    const after = await Effect.runPromise(Effect.flip(context.sum({ dtype: "F32", arrays: [new Float32Array(4)] }, [1])))
    expect(after._tag).toBe("GpuKernelError")
    expect(after.message).toContain("after destroy")
  })
})
