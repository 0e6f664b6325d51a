/// <reference types="@webgpu/types" />
/**
 * `out[j] = Σᵢ cᵢ·xᵢ[j]` in WGSL: the weighted sum that linear, plain task arithmetic and SLERP
 * end in (the GPU twin of `kernels/WeightedSum.ts`). Inputs are float32, or bfloat16/float16 as
 * stored, decoded in the shader (bf16: the 16 bits shifted to the top of a float32; f16:
 * `unpack2x16float`). Each element is accumulated in float32 with `fma`, inputs in order.
 *
 * Agreement with the CPU, which sums in float64 and rounds once: with u = 2⁻²⁴ (float32's unit
 * roundoff), the coefficients rounded to float32 (≤ u·|cᵢxᵢ| each) and N fused multiply-adds
 * (each rounds its partial sum, whose size is ≤ Σ|cᵢxᵢ|), |gpu − exact| ≤ (N + 1)·u·Σ|cᵢxᵢ|, and
 * the CPU's single rounding adds u·|result| ≤ u·Σ|cᵢxᵢ|: so |gpu − cpu| ≤ (N + 2)·u·Σ|cᵢxᵢ|,
 * plus N·2⁻¹²⁶ where a device flushes float32 subnormals to zero ({@link bound}).
 *
 * A caller that sums many ranges (`StreamSum`, per stream) keeps one {@link make}: the pipelines
 * and buffers are made once and reused, the inputs written to the device from their own bytes.
 *
 * @since 0.2.0
 */
import { Effect, Semaphore } from "effect"
import * as Device from "./Device.ts"

/** How the inputs are stored. @category models */
export type InputDType = "F32" | "BF16" | "F16"

/** Inputs of one dtype: float32 arrays, or the raw 16-bit words of bf16/f16. @category models */
export type Inputs =
  | { readonly dtype: "F32"; readonly arrays: ReadonlyArray<Float32Array> }
  | { readonly dtype: "BF16" | "F16"; readonly arrays: ReadonlyArray<Uint16Array> }

/** @category options */
export interface Options {
  /** Bytes per storage binding at most (default: the device's limit); smaller forces more chunks. */
  readonly maxBindingBytes?: number
}

const U = 2 ** -24

/**
 * The stated bound of |gpu − cpu| for one element: `(N + 2)·2⁻²⁴·Σ|cᵢxᵢ| + N·2⁻¹²⁶`, with `terms`
 * = Σ|cᵢxᵢ| for that element (computed in float64).
 *
 * @category bounds
 */
export const bound = (inputs: number, terms: number): number => (inputs + 2) * U * terms + inputs * 2 ** -126

const load = (dtype: InputDType): string => {
  switch (dtype) {
    case "F32":
      return "fn load(e: u32) -> f32 { return x[e]; }"
    case "BF16":
      return "fn load(e: u32) -> f32 { let w = x[e >> 1u]; return bitcast<f32>(((w >> ((e & 1u) * 16u)) & 0xffffu) << 16u); }"
    case "F16":
      return "fn load(e: u32) -> f32 { let v = unpack2x16float(x[e >> 1u]); return select(v.x, v.y, (e & 1u) == 1u); }"
  }
}

/** The kernel's WGSL (bindings: params, coef, x, out), for benches that time the dispatch alone. @category kernels */
export const shader = (dtype: InputDType): string => `
struct Params { n: u32, count: u32, stride: u32, pad: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> coef: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<${dtype === "F32" ? "f32" : "u32"}>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${load(dtype)}
@compute @workgroup_size(${Device.WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let total = groups.x * ${Device.WORKGROUP}u;
  for (var j = gid.x; j < params.n; j += total) {
    var acc = 0.0;
    for (var i = 0u; i < params.count; i++) { acc = fma(coef[i], load(i * params.stride + j), acc); }
    out[j] = acc;
  }
}`

/**
 * A weighted sum's context on one device, for as long as its owner (a stream, a stage) lives: the
 * compiled pipeline of each input dtype, and the input, output, coefficient, parameter and
 * read-back buffers, grown to the largest chunk asked for and reused. No per-call buffers or
 * pipelines, and no cache outside it: the owner calls `destroy` when done.
 *
 * @category models
 */
export interface WeightedSum {
  /**
   * The weighted sum of `inputs` (all of one length) with `coefficients`, in chunks that fit one
   * storage binding each, into `out` when given (at least as long as the inputs) or a fresh
   * array. Each input is written to the device straight from its own bytes (no host packing).
   * Calls run one at a time.
   */
  readonly sum: (inputs: Inputs, coefficients: ArrayLike<number>, out?: Float32Array) => Effect.Effect<Float32Array, Device.GpuKernelError>
  /** Frees the buffers; a later `sum` fails. */
  readonly destroy: () => void
}

interface Buffers {
  /** Bytes of the input buffer (every input of a chunk, one after another). */
  readonly xBytes: number
  /** Elements of the output and read-back buffers. */
  readonly elements: number
  /** Coefficients the coefficient buffer holds. */
  readonly inputs: number
  readonly x: GPUBuffer
  readonly y: GPUBuffer
  readonly staging: GPUBuffer
  readonly coef: GPUBuffer
  readonly params: GPUBuffer
}

/**
 * A {@link WeightedSum} on `device`; `options.maxBindingBytes` bounds its chunks.
 *
 * @category constructors
 */
export const make = (device: GPUDevice, options: Options = {}): WeightedSum => {
  const pipelines = new Map<InputDType, GPUComputePipeline>()
  const groups = new Map<InputDType, GPUBindGroup>()
  const lock = Semaphore.makeUnsafe(1)
  let buffers: Buffers | undefined
  let destroyed = false

  const release = () => {
    if (buffers !== undefined) for (const b of [buffers.x, buffers.y, buffers.staging, buffers.coef, buffers.params]) b.destroy()
    buffers = undefined
    groups.clear()
  }

  // Buffers for `count` inputs of `elements` each (16-bit inputs two to a word, each input from a
  // word boundary), grown when too small (each to the most asked for) and kept otherwise.
  const ensure = (count: number, elements: number, bytesPer: number): Buffers => {
    const even = elements + (elements % 2)
    const xBytes = count * even * bytesPer
    if (buffers !== undefined && buffers.inputs >= count && buffers.elements >= even && buffers.xBytes >= xBytes) return buffers
    const size = { xBytes: Math.max(xBytes, buffers?.xBytes ?? 0), elements: Math.max(even, buffers?.elements ?? 0), inputs: Math.max(count, buffers?.inputs ?? 0) }
    release()
    buffers = {
      ...size,
      x: Device.storage(device, size.xBytes, "weighted-sum.x"),
      y: Device.storage(device, size.elements * 4, "weighted-sum.out"),
      staging: device.createBuffer({ label: "weighted-sum.read", size: size.elements * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }),
      coef: Device.storage(device, size.inputs * 4, "weighted-sum.coef"),
      params: Device.uniform(device, new Uint32Array(4), "weighted-sum.params")
    }
    return buffers
  }

  const pipelineOf = (dtype: InputDType) =>
    Effect.suspend(() => {
      const cached = pipelines.get(dtype)
      return cached !== undefined
        ? Effect.succeed(cached)
        : Effect.tap(Device.compile(device, `weighted-sum.${dtype}`, shader(dtype)), (made) => Effect.sync(() => pipelines.set(dtype, made)))
    })

  // Writes elements [start, start + m) of `a` at `offset` bytes of `x`: straight from the array's
  // bytes, but for an odd count of 16-bit elements, whose last one goes in a padded word.
  const write = (x: GPUBuffer, a: Float32Array | Uint16Array, start: number, m: number, offset: number) => {
    const bytes = new Uint8Array(a.buffer, a.byteOffset + start * a.BYTES_PER_ELEMENT, m * a.BYTES_PER_ELEMENT)
    const whole = bytes.byteLength - (bytes.byteLength % 4)
    if (whole > 0) Device.upload(device, x, bytes.subarray(0, whole), offset)
    if (whole < bytes.byteLength) Device.upload(device, x, bytes.subarray(whole), offset + whole)
  }

  const sum = (inputs: Inputs, coefficients: ArrayLike<number>, target?: Float32Array): Effect.Effect<Float32Array, Device.GpuKernelError> =>
    Effect.gen(function* () {
      if (destroyed) return yield* new Device.GpuKernelError({ kernel: "weighted-sum", detail: "used after destroy (make a new WeightedSum)" })
      const count = inputs.arrays.length
      const n = inputs.arrays[0]?.length ?? 0
      const out = target ?? new Float32Array(n)
      if (n === 0 || count === 0) return out
      const wide = inputs.dtype === "F32"
      const pipe = yield* pipelineOf(inputs.dtype)
      // Words per element in the input binding (16-bit inputs pack two to a word); the output needs one.
      const chunk = Device.chunkElements(device, Math.max(1, wide ? count : count / 2), options.maxBindingBytes)
      const bytesPer = wide ? 4 : 2
      const b = ensure(count, Math.min(chunk, n), bytesPer)
      let group = groups.get(inputs.dtype)
      if (group === undefined) {
        group = device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: [b.params, b.coef, b.x, b.y].map((buffer, binding) => ({ binding, resource: { buffer } })) })
        groups.set(inputs.dtype, group)
      }
      const bound = group
      const coef = new Float32Array(b.inputs)
      coef.set(Array.from({ length: count }, (_, i) => coefficients[i]!))
      Device.upload(device, b.coef, coef)
      for (let start = 0; start < n; start += chunk) {
        const m = Math.min(chunk, n - start)
        const stride = m + (m % 2)
        inputs.arrays.forEach((a, i) => write(b.x, a, start, m, i * stride * bytesPer))
        device.queue.writeBuffer(b.params, 0, new Uint32Array([m, count, stride, 0]))
        yield* Device.run(device, "weighted-sum", (e) => {
          const pass = e.beginComputePass()
          pass.setPipeline(pipe)
          pass.setBindGroup(0, bound)
          pass.dispatchWorkgroups(Device.groupsFor(m))
          pass.end()
          e.copyBufferToBuffer(b.y, 0, b.staging, 0, m * 4)
        })
        yield* Device.readMapped(device, b.staging, "weighted-sum", (mapped) => out.set(new Float32Array(mapped, 0, m), start))
      }
      return out
    })

  return {
    sum: (inputs, coefficients, out) => lock.withPermit(sum(inputs, coefficients, out)),
    destroy: () => {
      destroyed = true
      release()
    }
  }
}

/**
 * The weighted sum of `inputs` (all of one length) with `coefficients`, in chunks that fit one
 * storage binding each: a {@link make} for one call (callers that sum many ranges keep their own).
 *
 * @category kernels
 */
export const weightedSum = (
  device: GPUDevice,
  inputs: Inputs,
  coefficients: ArrayLike<number>,
  options: Options = {}
): Effect.Effect<Float32Array, Device.GpuKernelError> =>
  Effect.suspend(() => {
    const context = make(device, options)
    return Effect.ensuring(context.sum(inputs, coefficients), Effect.sync(() => context.destroy()))
  })
