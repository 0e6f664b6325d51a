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
 * @since 0.2.0
 */
import { Effect } from "effect"
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
 * The weighted sum of `inputs` (all of one length) with `coefficients`, in chunks that fit one
 * storage binding each.
 *
 * @category kernels
 */
export const weightedSum = (
  device: GPUDevice,
  inputs: Inputs,
  coefficients: ArrayLike<number>,
  options: Options = {}
): Effect.Effect<Float32Array, Device.GpuKernelError> =>
  Effect.gen(function* () {
    const count = inputs.arrays.length
    const n = inputs.arrays[0]?.length ?? 0
    const out = new Float32Array(n)
    if (n === 0) return out
    if (count === 0) return out
    const wide = inputs.dtype === "F32"
    const pipe = yield* Device.pipeline(device, `weighted-sum.${inputs.dtype}`, shader(inputs.dtype))
    // Words per element in the input binding (16-bit inputs pack two to a word); the output needs one.
    const chunk = Device.chunkElements(device, Math.max(1, wide ? count : count / 2), options.maxBindingBytes)
    const bytesPer = wide ? 4 : 2
    yield* Device.using([], (track) =>
      Effect.gen(function* () {
        const first = Math.min(chunk, n)
        const x = track(Device.storage(device, count * (first + (first % 2)) * bytesPer, "weighted-sum.x"))
        const y = track(Device.storage(device, first * 4, "weighted-sum.out"))
        const coef = track(Device.storage(device, count * 4, "weighted-sum.coef"))
        Device.upload(device, coef, Float32Array.from(coefficients))
        const params = track(Device.uniform(device, new Uint32Array(4), "weighted-sum.params"))
        for (let start = 0; start < n; start += chunk) {
          const m = Math.min(chunk, n - start)
          const stride = m + (m % 2)
          const packed = wide ? new Float32Array(count * stride) : new Uint16Array(count * stride)
          inputs.arrays.forEach((a, i) => packed.set(a.subarray(start, start + m), i * stride))
          Device.upload(device, x, packed)
          device.queue.writeBuffer(params, 0, new Uint32Array([m, count, stride, 0]))
          yield* Device.run(device, "weighted-sum", (e) => Device.dispatch(e, device, pipe, [params, coef, x, y], m))
          out.set(new Float32Array(yield* Device.readBack(device, y, m * 4, "weighted-sum")), start)
        }
      }))
    return out
  })
