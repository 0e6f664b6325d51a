/// <reference types="@webgpu/types" />
/**
 * The merge kernel bench on a WebGPU device: `out = Σᵢ cᵢ·xᵢ` over 4 inputs of N elements, f32 →
 * f32 and bf16 → bf16, with a WGSL kernel of this bench (packages/strategies/src/merge/gpu/ had no
 * kernels yet when it was written). GB/s counts the bytes read and written, (4 + 1)·N·bytes, and is
 * set against the device's own copy bandwidth measured here (copyBufferToBuffer of the four inputs,
 * 2·4·N·bytes moved: the physical bound) and against the CPU path (`Packed.ts`, one thread, WASM
 * SIMD, float64 sums). The GPU's results are checked against the CPU's bytes.
 */
import * as Arena from "../../packages/strategies/src/merge/kernels/Arena.ts"
import * as Packed from "../../packages/strategies/src/merge/kernels/Packed.ts"

export const INPUTS = 4
/** As float32 values, so that the CPU (float64 sums) and the GPU (float32) multiply by the same numbers. */
export const COEFFICIENTS = Array.from(new Float32Array([0.4, 0.3, 0.2, 0.1]))
const WORKGROUP = 256

/**
 * One invocation per 4 f32 (a vec4) or 8 bf16 (a vec4<u32>, two bf16 per word); a grid-stride loop
 * covers sizes past 65535 workgroups. bf16 widens exactly (the high half of an f32), sums in f32 and
 * rounds to nearest even as `float32ToBF16Bits` (NaN kept quiet), like Packed.ts up to the f32 sum.
 */
const shader = (dtype: "F32" | "BF16"): string => {
  const element = dtype === "F32" ? "vec4<f32>" : "vec4<u32>"
  const inputs = Array.from({ length: INPUTS }, (_, i) => `@group(0) @binding(${i}) var<storage, read> x${i}: array<${element}>;`).join("\n")
  const body =
    dtype === "F32"
      ? `out[j] = ${Array.from({ length: INPUTS }, (_, i) => `c.v[${i >> 2}][${i & 3}] * x${i}[j]`).join(" + ")};`
      : `var lo = vec4<f32>(0.0); var hi = vec4<f32>(0.0);
      ${Array.from({ length: INPUTS }, (_, i) => `lo += c.v[${i >> 2}][${i & 3}] * bitcast<vec4<f32>>(x${i}[j] << vec4<u32>(16u)); hi += c.v[${i >> 2}][${i & 3}] * bitcast<vec4<f32>>(x${i}[j] & vec4<u32>(0xffff0000u));`).join("\n      ")}
      out[j] = bf16(lo) | (bf16(hi) << vec4<u32>(16u));`
  return `${inputs}
@group(0) @binding(${INPUTS}) var<storage, read_write> out: array<${element}>;
struct C { v: array<vec4<f32>, ${Math.ceil(INPUTS / 4)}> }
@group(0) @binding(${INPUTS + 1}) var<uniform> c: C;
fn bf16(x: vec4<f32>) -> vec4<u32> {
  let b = bitcast<vec4<u32>>(x);
  let rounded = (b + vec4<u32>(0x7fffu) + ((b >> vec4<u32>(16u)) & vec4<u32>(1u))) >> vec4<u32>(16u);
  let nan = (b & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
  return select(rounded, (b >> vec4<u32>(16u)) | vec4<u32>(0x40u), nan);
}
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let stride = groups.x * ${WORKGROUP}u;
  for (var j = id.x; j < arrayLength(&out); j += stride) {
      ${body}
  }
}`
}

export interface MergeFigures {
  readonly dtype: "F32" | "BF16"
  readonly elements: number
  readonly bytesMoved: number
  readonly gpuSeconds: number
  readonly gpuGBps: number
  readonly copySeconds: number
  readonly copyGBps: number
  /** gpuGBps / copyGBps (target ≥ 0.5 on a real GPU). */
  readonly ofCopy: number
  readonly cpuSeconds: number
  readonly cpuGBps: number
  readonly gpuOverCpu: number
  readonly uploadGBps: number
  readonly readbackGBps: number
  /** Elements whose GPU result differs from the CPU's bytes, and the largest difference. */
  readonly mismatches: number
  readonly maxUlps: number
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
  const arena = Arena.make({ maxBytes: (INPUTS + 2) * bytes + (1 << 24) })
  const hostInputs = Array.from({ length: INPUTS }, (_, i) => {
    const x = arena.allocBytes(bytes)!
    fill(x, dtype, i + 1)
    return x
  })
  const cpuOut = arena.allocBytes(bytes)!
  const packed = Packed.make(arena.memory, arena.owns)
  const cpuSeconds = await best(repeats, () => {
    const t0 = performance.now()
    if (!packed.weightedSum(cpuOut, dtype, hostInputs, dtype, COEFFICIENTS, 0, n)) Packed.weightedSumJs(cpuOut, dtype, hostInputs, dtype, COEFFICIENTS, 0, n)
    return (performance.now() - t0) / 1000
  })

  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC
  const inputs = hostInputs.map(() => device.createBuffer({ size: bytes, usage }))
  const out = device.createBuffer({ size: bytes, usage })
  const scratch = inputs.map(() => device.createBuffer({ size: bytes, usage: GPUBufferUsage.COPY_DST }))
  const coefficients = device.createBuffer({ size: 16 * Math.ceil(INPUTS / 4), usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST })
  const readback = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST })
  try {
    device.queue.writeBuffer(coefficients, 0, new Float32Array(COEFFICIENTS))
    const t0 = performance.now()
    inputs.forEach((b, i) => device.queue.writeBuffer(b, 0, hostInputs[i]!))
    await device.queue.onSubmittedWorkDone()
    const uploadSeconds = (performance.now() - t0) / 1000

    const module = device.createShaderModule({ code: shader(dtype) })
    const pipeline = await device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint: "main" } })
    const bindGroup = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [...inputs, out].map((buffer, binding) => ({ binding, resource: { buffer } })).concat([{ binding: INPUTS + 1, resource: { buffer: coefficients } }])
    })
    const invocations = bytes / 16
    const groups = Math.min(Math.ceil(invocations / WORKGROUP), device.limits.maxComputeWorkgroupsPerDimension)
    const submit = async (encode: (encoder: GPUCommandEncoder) => void): Promise<number> => {
      const encoder = device.createCommandEncoder()
      for (let k = 0; k < batch; k++) encode(encoder)
      const start = performance.now()
      device.queue.submit([encoder.finish()])
      await device.queue.onSubmittedWorkDone()
      return (performance.now() - start) / 1000 / batch
    }
    const gpuSeconds = await best(repeats, () =>
      submit((encoder) => {
        const pass = encoder.beginComputePass()
        pass.setPipeline(pipeline)
        pass.setBindGroup(0, bindGroup)
        pass.dispatchWorkgroups(groups)
        pass.end()
      })
    )
    const copySeconds = await best(repeats, () => submit((encoder) => inputs.forEach((b, i) => encoder.copyBufferToBuffer(b, 0, scratch[i]!, 0, bytes))))

    const encoder = device.createCommandEncoder()
    encoder.copyBufferToBuffer(out, 0, readback, 0, bytes)
    device.queue.submit([encoder.finish()])
    const r0 = performance.now()
    await readback.mapAsync(GPUMapMode.READ)
    const gpuOut = new Uint8Array(readback.getMappedRange().slice(0))
    const readbackSeconds = (performance.now() - r0) / 1000
    readback.unmap()

    // Check: the CPU sums in float64 and rounds once; the GPU rounds each of the 4 products (unless
    // fused) and each of the 3 additions in float32, every rounding ≤ 2⁻²⁴ of a value ≤ Σ|cᵢxᵢ|, and
    // the CPU's one rounding adds one more: |Δ| ≤ 5·2⁻²⁴·Σ|cᵢxᵢ| for f32. A bf16 result is the f32
    // sum rounded to bf16, so the two may also fall on either side of a rounding boundary.
    let mismatches = 0, maxUlps = 0, maxRelative = 0, ok = true
    const view = (x: Uint8Array) => (dtype === "F32" ? new Float32Array(x.buffer, x.byteOffset, n) : new Uint16Array(x.buffer, x.byteOffset, n))
    const got = view(gpuOut), want = view(cpuOut), xs = hostInputs.map(view)
    const asF32 = (v: number) => (dtype === "F32" ? v : new Float32Array(new Uint32Array([v << 16]).buffer)[0]!)
    for (let j = 0; j < n; j++) {
      if (got[j] === want[j]) continue
      mismatches++
      const g = asF32(got[j]!), w = asF32(want[j]!)
      let bound = 0
      for (let i = 0; i < INPUTS; i++) bound += Math.abs(COEFFICIENTS[i]! * asF32(xs[i]![j]!))
      maxRelative = Math.max(maxRelative, Math.abs(g - w) / bound)
      if (dtype === "F32") {
        if (Math.abs(g - w) > 5 * 2 ** -24 * bound) ok = false
      } else {
        // Cancellation can leave a result far below Σ|cᵢxᵢ|, where a bf16 ulp is tiny: the bound is
        // the f32 one plus one bf16 ulp of the larger result (each side rounds once to bf16).
        maxUlps = Math.max(maxUlps, Math.abs(((got[j]! & 0x8000 ? -1 : 1) * (got[j]! & 0x7fff)) - ((want[j]! & 0x8000 ? -1 : 1) * (want[j]! & 0x7fff))))
        if (Math.abs(g - w) > 5 * 2 ** -24 * bound + 2 ** (Math.floor(Math.log2(Math.max(Math.abs(g), Math.abs(w)))) - 7)) ok = false
      }
    }
    const moved = (INPUTS + 1) * bytes
    const gpuGBps = moved / gpuSeconds / 1e9
    const copyGBps = (2 * INPUTS * bytes) / copySeconds / 1e9
    const cpuGBps = moved / cpuSeconds / 1e9
    return {
      dtype, elements: n, bytesMoved: moved, gpuSeconds, gpuGBps, copySeconds, copyGBps, ofCopy: gpuGBps / copyGBps,
      cpuSeconds, cpuGBps, gpuOverCpu: cpuSeconds / gpuSeconds,
      uploadGBps: (INPUTS * bytes) / uploadSeconds / 1e9, readbackGBps: bytes / readbackSeconds / 1e9,
      mismatches, maxUlps, maxRelative, ok
    }
  } finally {
    for (const b of [...inputs, ...scratch, out, coefficients, readback]) b.destroy()
  }
}
