/// <reference types="@webgpu/types" />
/**
 * The merge kernel bench on a WebGPU device: `out = Σᵢ cᵢ·xᵢ` over 4 inputs of N elements, f32 and
 * bf16 inputs, with the kernel merge/linear runs (`packages/strategies/src/merge/gpu/WeightedSum.ts`:
 * the inputs in one binding as stored, bf16 decoded in the shader, float32 sums out). It reports:
 *
 * - the dispatch alone: GB/s of the bytes the kernel reads and writes, 4·N·bytes + 4·N (float32
 *   out), against the device's own copy bandwidth measured here (copyBufferToBuffer of the input
 *   binding, 2·4·N·bytes moved: the physical bound);
 * - end to end as `StreamSum` calls it (one `WeightedSum.make` for the stream, then per range its
 *   `sum`: each input written from its own bytes, dispatch, read-back into a reused float32
 *   array) plus the host's encoding to the input dtype (`DType.fromNumbers`);
 * - the CPU path (`Packed.ts`, one thread, WASM SIMD, float64 sums) on the same bytes, dtype → dtype.
 *
 * Check: every element of the GPU's float32 sum against the CPU's (the same inputs → f32, float64
 * summed and rounded once) within `WeightedSum.bound` (|Δ| ≤ (N + 2)·2⁻²⁴·Σ|cᵢxᵢ| + N·2⁻¹²⁶).
 */
import * as DType from "../../packages/core/src/tensor/DType.ts"
import { Effect } from "../merge/effect.ts"
import * as Device from "../../packages/strategies/src/merge/gpu/Device.ts"
import * as GpuSum from "../../packages/strategies/src/merge/gpu/WeightedSum.ts"
import * as Arena from "../../packages/strategies/src/merge/kernels/Arena.ts"
import * as Packed from "../../packages/strategies/src/merge/kernels/Packed.ts"

export const INPUTS = 4
/** As float32 values, so that the CPU (float64 sums) and the GPU (float32) multiply by the same numbers. */
export const COEFFICIENTS = Array.from(new Float32Array([0.4, 0.3, 0.2, 0.1]))

export interface MergeFigures {
  readonly dtype: "F32" | "BF16"
  readonly elements: number
  /** What the dispatch reads and writes: the inputs as stored and the float32 sums. */
  readonly bytesMoved: number
  readonly gpuSeconds: number
  readonly gpuGBps: number
  readonly copySeconds: number
  readonly copyGBps: number
  /** gpuGBps / copyGBps (target ≥ 0.5 on a real GPU). */
  readonly ofCopy: number
  /** `WeightedSum.make(…).sum` (context made once) plus encoding to the input dtype, GB/s of the inputs and output as stored. */
  readonly endToEndSeconds: number
  readonly endToEndGBps: number
  readonly cpuSeconds: number
  readonly cpuGBps: number
  /** CPU time over the dispatch's time, and over the end-to-end time. */
  readonly gpuOverCpu: number
  readonly endToEndOverCpu: number
  /** Elements whose GPU float32 sum differs from the CPU's, and the largest |Δ| / Σ|cᵢxᵢ|. */
  readonly mismatches: number
  readonly maxRelative: number
  readonly ok: boolean
}

// Finite inputs with the exponents of typical weights (2^-12 … 2^2), random sign and mantissa.
const fill = (bytes: Uint8Array, dtype: "F32" | "BF16", seed: number): void => {
  const h = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2)
  let s = seed >>> 0
  for (let j = 0; j < h.length; j++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    h[j] = dtype === "BF16" || (j & 1) === 1 ? ((s >>> 16) & 0x807f) | ((115 + ((s >>> 8) & 15)) << 7) : s & 0xffff
  }
}

const best = async (repeats: number, fn: () => Promise<number> | number): Promise<number> => {
  await fn()
  let t = Infinity
  for (let r = 0; r < repeats; r++) t = Math.min(t, await fn())
  return t
}

/** Runs the bench for one dtype; `batch` dispatches (or copies) per timed submission. */
export const mergeBench = async (device: GPUDevice, options: { readonly elements: number; readonly dtype: "F32" | "BF16"; readonly repeats: number; readonly batch: number }): Promise<MergeFigures> => {
  const { dtype, repeats, batch } = options
  const per = Packed.bytesPer(dtype)
  const n = options.elements - (options.elements % 8)
  const bytes = n * per
  const arena = Arena.make({ maxBytes: (INPUTS + 3) * n * 4 + (1 << 24) })
  const hostInputs = Array.from({ length: INPUTS }, (_, i) => {
    const x = arena.allocBytes(bytes)!
    fill(x, dtype, i + 1)
    return x
  })
  const cpuOut = arena.allocBytes(bytes)!
  const cpuSums = arena.allocBytes(n * 4)!
  const packed = Packed.make(arena.memory, arena.owns)
  const sum = (out: Uint8Array, outDtype: Packed.PackedDType) => {
    if (!packed.weightedSum(out, outDtype, hostInputs, dtype, COEFFICIENTS, 0, n)) Packed.weightedSumJs(out, outDtype, hostInputs, dtype, COEFFICIENTS, 0, n)
  }
  const cpuSeconds = await best(repeats, () => {
    const t0 = performance.now()
    sum(cpuOut, dtype)
    return (performance.now() - t0) / 1000
  })
  sum(cpuSums, "F32")

  // The kernel's inputs as WeightedSum.ts lays them out: one binding, input i at i·n (n is even).
  const views = hostInputs.map((x) => (dtype === "F32" ? new Float32Array(x.buffer, x.byteOffset, n) : new Uint16Array(x.buffer, x.byteOffset, n)))
  const inputs: GpuSum.Inputs = dtype === "F32" ? { dtype, arrays: views as Array<Float32Array> } : { dtype, arrays: views as Array<Uint16Array> }
  const pipe = await Effect.runPromise(Device.pipeline(device, `weighted-sum.${dtype}`, GpuSum.shader(dtype)))
  const x = Device.storage(device, INPUTS * bytes, "bench.x")
  const y = Device.storage(device, n * 4, "bench.out")
  const scratch = device.createBuffer({ size: INPUTS * bytes, usage: GPUBufferUsage.COPY_DST })
  // As StreamSum: one context for the stream, its pipeline and buffers reused by every range.
  const context = GpuSum.make(device)
  const coef = Device.storage(device, INPUTS * 4, "bench.coef")
  const params = Device.uniform(device, new Uint32Array([n, INPUTS, n, 0]), "bench.params")
  try {
    Device.upload(device, coef, Float32Array.from(COEFFICIENTS))
    hostInputs.forEach((h, i) => Device.upload(device, x, h, i * bytes))
    const submit = async (encode: (encoder: GPUCommandEncoder) => void): Promise<number> => {
      const encoder = device.createCommandEncoder()
      for (let k = 0; k < batch; k++) encode(encoder)
      const start = performance.now()
      device.queue.submit([encoder.finish()])
      await device.queue.onSubmittedWorkDone()
      return (performance.now() - start) / 1000 / batch
    }
    const gpuSeconds = await best(repeats, () => submit((encoder) => Device.dispatch(encoder, device, pipe, [params, coef, x, y], n)))
    const copySeconds = await best(repeats, () => submit((encoder) => encoder.copyBufferToBuffer(x, 0, scratch, 0, INPUTS * bytes)))

    // End to end, as StreamSum sums one range on the GPU: the kernel's function and the encoding.
    const gpuSums = new Float32Array(n)
    const endToEndSeconds = await best(repeats, async () => {
      const t0 = performance.now()
      await Effect.runPromise(context.sum(inputs, COEFFICIENTS, gpuSums))
      if (dtype !== "F32") DType.fromNumbers(gpuSums, dtype)
      return (performance.now() - t0) / 1000
    })

    let mismatches = 0, maxRelative = 0, ok = true
    const want = new Float32Array(cpuSums.buffer, cpuSums.byteOffset, n)
    const asF32 = (v: number) => (dtype === "F32" ? v : new Float32Array(new Uint32Array([v << 16]).buffer)[0]!)
    for (let j = 0; j < n; j++) {
      if (gpuSums[j] === want[j]) continue
      mismatches++
      let terms = 0
      for (let i = 0; i < INPUTS; i++) terms += Math.abs(COEFFICIENTS[i]! * asF32(views[i]![j]!))
      const delta = Math.abs(gpuSums[j]! - want[j]!)
      maxRelative = Math.max(maxRelative, delta / terms)
      if (!(delta <= GpuSum.bound(INPUTS, terms))) ok = false
    }
    const moved = INPUTS * bytes + n * 4
    const asStored = (INPUTS + 1) * bytes
    const gpuGBps = moved / gpuSeconds / 1e9
    const copyGBps = (2 * INPUTS * bytes) / copySeconds / 1e9
    return {
      dtype, elements: n, bytesMoved: moved, gpuSeconds, gpuGBps, copySeconds, copyGBps, ofCopy: gpuGBps / copyGBps,
      endToEndSeconds, endToEndGBps: asStored / endToEndSeconds / 1e9,
      cpuSeconds, cpuGBps: asStored / cpuSeconds / 1e9, gpuOverCpu: cpuSeconds / gpuSeconds, endToEndOverCpu: cpuSeconds / endToEndSeconds,
      mismatches, maxRelative, ok
    }
  } finally {
    for (const b of [x, y, scratch, coef, params]) b.destroy()
    context.destroy()
  }
}
