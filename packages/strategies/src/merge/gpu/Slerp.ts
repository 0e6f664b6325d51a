/// <reference types="@webgpu/types" />
/**
 * SLERP in WGSL (the GPU twin of `kernels/Slerp.ts`): the 2×2 Gram matrix of `a` and `b` (task
 * vectors with a base) reduced on the GPU — each thread sums its grid-stride elements in float32,
 * each workgroup reduces its 256 threads in a tree, and the host adds the workgroups' partials in
 * float64 — then the CPU's own `plan` (angle, the lerp fallback past |cos Ω| > dot_threshold, the
 * norms at or below eps left unnormalised) turns it into coefficients, and `WeightedSum.ts`
 * interpolates.
 *
 * Bound of the statistics: each Gram entry is within (k + 11)·u·Σ|aⱼbⱼ| of the exact one, u = 2⁻²⁴,
 * k the most elements one thread sums (k roundings of its running sum, 8 tree levels, the
 * product, and τ's float32 rounding with a base). The output is within the weighted sum's bound
 * plus Σᵢ|c′ᵢ − cᵢ|·|xᵢ|, the coefficients' difference; the lerp/slerp branch is the CPU's except
 * where |cos Ω| is within the statistics' error of the threshold.
 *
 * @since 0.2.0
 */
import { Effect, Result } from "effect"
import type { InvalidMergeParameter } from "../kernels/KernelError.ts"
import * as Kernel from "../kernels/Slerp.ts"
import * as Device from "./Device.ts"
import * as WeightedSum from "./WeightedSum.ts"

const U = 2 ** -24

/** The stated bound of one Gram entry: `(k + 11)·u·Σ|aⱼbⱼ|` for k elements per thread. @category bounds */
export const gramBound = (perThread: number, absoluteSum: number): number => (perThread + 11) * U * absoluteSum

/** The most elements one thread of the Gram kernel sums for a tensor of `n` elements (with `maxBindingBytes`). @category bounds */
export const perThread = (device: GPUDevice, n: number, inputs: number, options: WeightedSum.Options = {}): number => {
  const chunk = Math.min(n, Device.chunkElements(device, inputs, options.maxBindingBytes))
  return Math.ceil(chunk / (Device.groupsFor(chunk) * Device.WORKGROUP))
}

const gramShader = `
struct Params { n: u32, stride: u32, withBase: u32, pad: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
var<workgroup> sums: array<vec3<f32>, ${Device.WORKGROUP}>;
@compute @workgroup_size(${Device.WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let total = groups.x * ${Device.WORKGROUP}u;
  let o = params.withBase * params.stride;
  var acc = vec3<f32>(0.0);
  for (var j = gid.x; j < params.n; j += total) {
    let base = select(0.0, x[j], params.withBase == 1u);
    let a = x[o + j] - base;
    let b = x[o + params.stride + j] - base;
    acc = acc + vec3<f32>(a * a, a * b, b * b);
  }
  sums[lid] = acc;
  workgroupBarrier();
  for (var half = ${Device.WORKGROUP / 2}u; half > 0u; half = half >> 1u) {
    if (lid < half) { sums[lid] = sums[lid] + sums[lid + half]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    partials[wid.x * 3u] = sums[0].x;
    partials[wid.x * 3u + 1u] = sums[0].y;
    partials[wid.x * 3u + 2u] = sums[0].z;
  }
}`

/** The 2×2 Gram matrix (row-major, as `Gram.gram`) of `a` and `b`, less `base` when given. @category statistics */
export const statistics = (
  device: GPUDevice,
  a: Float32Array,
  b: Float32Array,
  base?: Float32Array,
  options: WeightedSum.Options = {}
): Effect.Effect<Float64Array, Device.GpuKernelError> =>
  Effect.gen(function* () {
    const inputs = base === undefined ? [a, b] : [base, a, b]
    const n = a.length
    const gram = new Float64Array(4)
    if (n === 0) return gram
    const pipe = yield* Device.pipeline(device, "slerp.gram", gramShader)
    const chunk = Device.chunkElements(device, inputs.length, options.maxBindingBytes)
    yield* Device.scoped(device, ({ storage, uniform }) =>
      Effect.gen(function* () {
        const first = Math.min(chunk, n)
        const x = storage(inputs.length * first * 4, "slerp.x")
        const partials = storage(Device.groupsFor(first) * 3 * 4, "slerp.partials")
        const params = uniform(new Uint32Array(4), "slerp.params")
        for (let start = 0; start < n; start += chunk) {
          const m = Math.min(chunk, n - start)
          const packed = new Float32Array(inputs.length * m)
          inputs.forEach((v, i) => packed.set(v.subarray(start, start + m), i * m))
          Device.upload(device, x, packed)
          device.queue.writeBuffer(params, 0, new Uint32Array([m, m, base === undefined ? 0 : 1, 0]))
          yield* Device.run(device, "slerp.gram", (e) => Device.dispatch(e, device, pipe, [params, x, partials], m))
          const groups = Device.groupsFor(m)
          const sums = new Float32Array(yield* Device.readBack(device, partials, groups * 3 * 4, "slerp.gram"))
          for (let g = 0; g < groups; g++) {
            gram[0] = gram[0]! + sums[3 * g]!
            gram[1] = gram[1]! + sums[3 * g + 1]!
            gram[3] = gram[3]! + sums[3 * g + 2]!
          }
        }
        gram[2] = gram[1]!
      }))
    return gram
  })

/** @category models */
export interface SlerpResult {
  readonly out: Float32Array
  readonly plan: Kernel.SlerpPlan
  readonly gram: Float64Array
}

/** SLERP of one tensor: the statistics here, the CPU's plan, the interpolation here. @category kernels */
export const merge = (
  device: GPUDevice,
  params: Kernel.SlerpParams,
  a: Float32Array,
  b: Float32Array,
  base: Float32Array | undefined,
  tensor: string,
  options: WeightedSum.Options = {}
): Effect.Effect<SlerpResult, Device.GpuKernelError | InvalidMergeParameter> =>
  Effect.gen(function* () {
    const gram = yield* statistics(device, a, b, base, options)
    const planned = Kernel.plan(params, gram, base !== undefined, tensor)
    if (Result.isFailure(planned)) return yield* Effect.fail(planned.failure)
    const arrays = base === undefined ? [a, b] : [base, a, b]
    const out = yield* WeightedSum.weightedSum(device, { dtype: "F32", arrays }, planned.success.coefficients, options)
    return { out, plan: planned.success, gram }
  })
