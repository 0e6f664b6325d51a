/// <reference types="@webgpu/types" />
/**
 * What every WGSL merge kernel shares: compiled pipelines (cached per device by the run's `GpuMerge`), uploads, read-backs,
 * grid-stride dispatches, and the chunk size that keeps every storage binding within the
 * device's `maxStorageBufferBindingSize` (128 MiB on lavapipe), so a tensor of any size runs as
 * consecutive element ranges.
 *
 * Buffers: a kernel takes its buffers in {@link scoped}, from the device's pool
 * (`gpu/BufferPool.ts`, held by the handle, reached through the run's `GpuMerge`), and they go
 * back to it when the call ends, however it ends; {@link readBack}'s read-back buffer too. Called
 * without a `GpuMerge` of that device (the tests' direct calls), each call makes and destroys its own.
 *
 * Errors of the device (a shader that does not compile, a lost device, a failed read-back) are
 * {@link GpuKernelError}s naming the kernel.
 *
 * @since 0.2.0
 */
import { Effect, Option, Schema } from "effect"
import * as BufferPool from "../../gpu/BufferPool.ts"
import { GpuMerge } from "../GpuMerge.ts"

/** A WGSL kernel failed on the device: `kernel` names it, `detail` is what WebGPU said. @category errors */
export class GpuKernelError extends Schema.TaggedError<GpuKernelError>()("GpuKernelError", {
  kernel: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `GPU merge kernel "${this.kernel}": ${this.detail} (unset the webgpu backend to merge on the CPU)`
  }
}

/** Threads of a workgroup, in every kernel. @category constants */
export const WORKGROUP = 256

/** Most workgroups one grid-stride dispatch launches (below every device's per-dimension limit). */
const MAX_GROUPS = 4096

/** The compute pipeline of `code` (entry point `main`), compiled (no cache: {@link pipeline} has one). @category pipelines */
export const compile = (device: GPUDevice, kernel: string, code: string): Effect.Effect<GPUComputePipeline, GpuKernelError> =>
  Effect.tryPromise({
    try: async () => {
      device.pushErrorScope("validation")
      const module = device.createShaderModule({ code })
      const made = await device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint: "main" } })
      const error = await device.popErrorScope()
      if (error !== null) throw new Error(error.message)
      return made
    },
    catch: (cause) => new GpuKernelError({ kernel, detail: `the WGSL kernel does not compile: ${cause instanceof Error ? cause.message : String(cause)}` })
  })

/**
 * The compute pipeline of `code` (entry point `main`), compiled once per device: kept in the
 * run's {@link GpuMerge} (whose cache the device's handle holds) when it is this device's, else
 * compiled for this call alone (a kernel called directly, as the tests do).
 *
 * @category pipelines
 */
export const pipeline = (device: GPUDevice, kernel: string, code: string): Effect.Effect<GPUComputePipeline, GpuKernelError> =>
  Effect.flatMap(Effect.serviceOption(GpuMerge), (gpu) => {
    const cache = Option.isSome(gpu) && gpu.value.device === device ? gpu.value.pipelines : undefined
    const cached = cache?.get(code)
    if (cached !== undefined) return Effect.succeed(cached)
    const made = compile(device, kernel, code)
    return cache === undefined ? made : Effect.tap(made, (p) => Effect.sync(() => cache.set(code, p)))
  })

/**
 * Elements per chunk when `words` 32-bit words per element are bound in one storage buffer
 * (e.g. N float32 inputs: N words), a multiple of `multiple`. `limit` overrides the device's
 * binding limit (tests use it to force several chunks).
 *
 * @category chunks
 */
export const chunkElements = (device: GPUDevice, wordsPerElement: number, limit?: number, multiple = WORKGROUP): number => {
  const bytes = Math.min(limit ?? device.limits.maxStorageBufferBindingSize, device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize)
  const elements = Math.floor(bytes / (4 * wordsPerElement))
  return Math.max(multiple, elements - (elements % multiple))
}

/** A storage buffer of `bytes` (rounded up to 4), for reading and writing. @category buffers */
export const storage = (device: GPUDevice, bytes: number, label: string): GPUBuffer =>
  device.createBuffer({ label, size: Math.max(4, Math.ceil(bytes / 4) * 4), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC })

/** A uniform buffer holding `words` (u32 and f32 reinterpretation is the caller's). @category buffers */
export const uniform = (device: GPUDevice, words: ArrayBufferView<ArrayBuffer>, label: string): GPUBuffer => {
  const size = Math.max(16, Math.ceil(words.byteLength / 16) * 16)
  const buffer = device.createBuffer({ label, size, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST })
  device.queue.writeBuffer(buffer, 0, words.buffer, words.byteOffset, words.byteLength)
  return buffer
}

/** Writes `data` at `offset` bytes of `buffer`, padded to whole words. @category buffers */
export const upload = (device: GPUDevice, buffer: GPUBuffer, data: ArrayBufferView<ArrayBufferLike>, offset = 0): void => {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  if (bytes.byteLength % 4 === 0) {
    // A view, not its buffer: Dawn takes views of a SharedArrayBuffer (the merge arena's
    // WebAssembly memory) as they are, and refuses the SharedArrayBuffer itself.
    device.queue.writeBuffer(buffer, offset, bytes as Uint8Array<ArrayBuffer>)
    return
  }
  const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4)
  padded.set(bytes)
  device.queue.writeBuffer(buffer, offset, padded.buffer, 0, padded.byteLength)
}

/** Runs `pass` on a command encoder and submits it. @category dispatch */
export const submit = (device: GPUDevice, record: (encoder: GPUCommandEncoder) => void): void => {
  const encoder = device.createCommandEncoder()
  record(encoder)
  device.queue.submit([encoder.finish()])
}

/**
 * Submits what `record` records, with the uploads queued before it, and fails with the first
 * validation or out-of-memory error the device reports for them.
 *
 * @category dispatch
 */
export const run = (device: GPUDevice, kernel: string, record: (encoder: GPUCommandEncoder) => void): Effect.Effect<void, GpuKernelError> =>
  Effect.tryPromise({
    try: async () => {
      device.pushErrorScope("out-of-memory")
      device.pushErrorScope("validation")
      submit(device, record)
      const invalid = await device.popErrorScope()
      const memory = await device.popErrorScope()
      const error = invalid ?? memory
      if (error !== null) throw new Error(error.message)
    },
    catch: (cause) => new GpuKernelError({ kernel, detail: cause instanceof Error ? cause.message : String(cause) })
  })

/** Records one grid-stride dispatch of `pipeline` over `n` elements with `buffers` at bindings 0, 1, … @category dispatch */
export const dispatch = (encoder: GPUCommandEncoder, device: GPUDevice, pipe: GPUComputePipeline, buffers: ReadonlyArray<GPUBuffer>, n: number): void => {
  const group = device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })) })
  const pass = encoder.beginComputePass()
  pass.setPipeline(pipe)
  pass.setBindGroup(0, group)
  pass.dispatchWorkgroups(Math.max(1, Math.min(MAX_GROUPS, Math.ceil(n / WORKGROUP))))
  pass.end()
}

/** Workgroups a grid-stride dispatch over `n` elements launches (for per-workgroup partials). @category dispatch */
export const groupsFor = (n: number): number => Math.max(1, Math.min(MAX_GROUPS, Math.ceil(n / WORKGROUP)))

/**
 * The buffer pool of `device`: the run's {@link GpuMerge}'s when it is this device's, else a pool
 * for one call that keeps nothing (budget 0: every buffer given back is destroyed).
 *
 * @category buffers
 */
export const poolOf = (device: GPUDevice): Effect.Effect<BufferPool.BufferPool> =>
  Effect.map(Effect.serviceOption(GpuMerge), (gpu) =>
    Option.isSome(gpu) && gpu.value.device === device ? gpu.value.buffers : BufferPool.make(device, 0))

/** A kernel call's buffers, from {@link scoped}. @category buffers */
export interface Buffers {
  /** A storage buffer of at least `bytes` (read, written, copied); its contents are stale: write before reading. */
  readonly storage: (bytes: number, label: string) => GPUBuffer
  /** A uniform buffer holding `words` (u32 and f32 reinterpretation is the caller's). */
  readonly uniform: (words: ArrayBufferView<ArrayBuffer>, label: string) => GPUBuffer
}

/**
 * Runs `effect` with buffers from `device`'s pool ({@link poolOf}), every one given back when
 * `effect` ends — succeeds, fails or is interrupted — so nothing leaks and the next call reuses them.
 *
 * @category buffers
 */
export const scoped = <A, E, R>(device: GPUDevice, effect: (buffers: Buffers) => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(poolOf(device), (pool) => {
    const taken: Array<GPUBuffer> = []
    const take = (usage: BufferPool.Usage, bytes: number, label: string) => {
      const buffer = pool.take(usage, bytes, label)
      taken.push(buffer)
      return buffer
    }
    const buffers: Buffers = {
      storage: (bytes, label) => take("storage", bytes, label),
      uniform: (words, label) => {
        const buffer = take("uniform", Math.max(16, Math.ceil(words.byteLength / 16) * 16), label)
        device.queue.writeBuffer(buffer, 0, words.buffer, words.byteOffset, words.byteLength)
        return buffer
      }
    }
    return Effect.ensuring(
      Effect.suspend(() => effect(buffers)),
      Effect.sync(() => {
        taken.forEach((b) => pool.give(b))
      })
    )
  })

/** Copies `bytes` of `buffer` back to the host (as a fresh ArrayBuffer), through a read-back buffer of the pool. @category buffers */
export const readBack = (device: GPUDevice, buffer: GPUBuffer, bytes: number, kernel: string): Effect.Effect<ArrayBuffer, GpuKernelError> =>
  Effect.flatMap(poolOf(device), (pool) => {
    const size = Math.ceil(bytes / 4) * 4
    return Effect.acquireUseRelease(
      Effect.sync(() => pool.take("staging", size, `${kernel}.read`)),
      (staging) =>
        Effect.tryPromise({
          try: async () => {
            device.pushErrorScope("validation")
            submit(device, (e) => e.copyBufferToBuffer(buffer, 0, staging, 0, size))
            await staging.mapAsync(GPUMapMode.READ, 0, size)
            const error = await device.popErrorScope()
            if (error !== null) throw new Error(error.message)
            const copy = staging.getMappedRange(0, size).slice(0, bytes)
            staging.unmap()
            return copy
          },
          catch: (cause) => new GpuKernelError({ kernel, detail: `reading the result back failed: ${cause instanceof Error ? cause.message : String(cause)}` })
        }),
      // Still mapped or being mapped (a failure, an interruption): the pool destroys it.
      (staging) => Effect.sync(() => pool.give(staging))
    )
  })

/**
 * Maps `staging` (a MAP_READ buffer the caller has copied into) and hands its bytes to `read`,
 * which must copy what it keeps (the range is gone once unmapped); the buffer is reusable after.
 *
 * @category buffers
 */
export const readMapped = (device: GPUDevice, staging: GPUBuffer, kernel: string, read: (mapped: ArrayBuffer) => void): Effect.Effect<void, GpuKernelError> =>
  Effect.tryPromise({
    try: async () => {
      await staging.mapAsync(GPUMapMode.READ)
      try {
        read(staging.getMappedRange())
      } finally {
        staging.unmap()
      }
    },
    catch: (cause) => new GpuKernelError({ kernel, detail: `reading the result back failed: ${cause instanceof Error ? cause.message : String(cause)}` })
  })
