/// <reference types="@webgpu/types" />
/**
 * The GPU a merge stage may run its kernels on. Provided by the runner when a run's backend
 * resolves to `webgpu` (the same device TF.js uses, from `BackendInfo.gpu`); merge methods with a
 * WGSL kernel (`merge/gpu/`) look it up with `Effect.serviceOption(GpuMerge)` and use the CPU path
 * when it is absent. The GPU result agrees with the CPU's within the bounds the strategies README
 * states ("GPU kernels").
 *
 * @since 0.2.0
 */
import { Context, Layer } from "effect"
import type * as BufferPool from "../gpu/BufferPool.ts"
import type * as Gpu from "../gpu/Gpu.ts"

/**
 * A WebGPU device for merge kernels. Whoever provides it keeps the device's {@link Gpu.GpuHandle}
 * referenced while the service is in use.
 *
 * @category services
 */
export class GpuMerge extends Context.Service<GpuMerge, {
  readonly device: GPUDevice
  readonly info: Gpu.GpuInfo
  /** Compiled pipelines by WGSL source, held by the device's handle: each kernel compiles once per device. */
  readonly pipelines: Map<string, GPUComputePipeline>
  /**
   * The handle's recycled buffers (`gpu/BufferPool.ts`): the kernels' storage, uniform and
   * read-back buffers come from it and go back to it.
   */
  readonly buffers: BufferPool.BufferPool
}>()("crucible/strategies/merge/GpuMerge") {
  /** The service of an acquired GPU handle. */
  static readonly ofHandle = (handle: Gpu.GpuHandle): GpuMerge["Service"] =>
    GpuMerge.of({ device: handle.device, info: handle.info, pipelines: handle.pipelines, buffers: handle.buffers })

  /** The service from an acquired GPU handle, as a layer. */
  static readonly fromHandle = (handle: Gpu.GpuHandle): Layer.Layer<GpuMerge> => Layer.succeed(GpuMerge, GpuMerge.ofHandle(handle))
}
