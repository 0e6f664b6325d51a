/// <reference types="@webgpu/types" />
/**
 * A WebGPU device in Node: Dawn through the optional `webgpu` npm package, on whatever Vulkan
 * driver the machine has — NVIDIA's ICD on a GPU server, or lavapipe (Mesa's CPU driver, installed
 * by `scripts/setup-lavapipe.sh`) on a machine without a GPU. Nothing here is loaded until asked:
 * `acquire` imports `webgpu` on demand and fails with a typed `GpuError` that says what is missing
 * (the package, a Vulkan loader or driver, an adapter).
 *
 * Dawn's pitfalls, handled here: the object `create()` returns must stay referenced while the
 * device is used (collected, Dawn crashes in `ProcessEvents`), so the handle keeps it; Node 22 has
 * a read-only `navigator`, so it is defined with `Object.defineProperty`; the Vulkan loader reads
 * `VK_DRIVER_FILES` when Dawn creates its instance, so the lavapipe ICD is put there first when no
 * driver was chosen and lavapipe is installed.
 *
 * @since 0.2.0
 */
import { Effect, Schema, Semaphore } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describeCause, importOptional } from "../backend/Optional.ts"
import * as BufferPool from "./BufferPool.ts"

/** Why no GPU device could be had. @category errors */
export class GpuError extends Schema.TaggedError<GpuError>()("GpuError", {
  reason: Schema.Literals(["NotInstalled", "NoAdapter", "NoDevice"]),
  detail: Schema.String
}) {
  override get message() {
    return `WebGPU (${this.reason}): ${this.detail}`
  }
}

/** What the adapter says of itself, for spans and the manifest. @category models */
export interface GpuInfo {
  readonly vendor: string
  readonly architecture: string
  readonly device: string
  readonly description: string
  /** A software adapter (lavapipe): correct, not fast. */
  readonly isFallbackAdapter: boolean
  readonly maxBufferSize: number
  readonly maxStorageBufferBindingSize: number
  /** The Vulkan ICD file the loader was pointed at, when Crucible chose it. */
  readonly driverFiles?: string | undefined
}

/** A device and what keeps it alive. @category models */
export interface GpuHandle {
  readonly device: GPUDevice
  readonly adapter: GPUAdapter
  readonly info: GpuInfo
  /** Dawn's instance: referenced as long as the device is used. */
  readonly instance: unknown
  /** The device's slot: the stages that run on it take it one at a time (the runner's GPU pool). */
  readonly slot: Semaphore.Semaphore
  /** The merge kernels' compiled pipelines on this device, by WGSL source (`merge/gpu/Device.pipeline`). */
  readonly pipelines: Map<string, GPUComputePipeline>
  /** The merge kernels' recycled buffers on this device (`BufferPool.ts`), bounded; they live as long as the device (the process: see `backend/Backend.ts`). */
  readonly buffers: BufferPool.BufferPool
}

/** Where `scripts/setup-lavapipe.sh` installs lavapipe (`CRUCIBLE_LAVAPIPE_DIR`, else `~/.cache/crucible/lavapipe`). */
export const lavapipeDir = (env: NodeJS.ProcessEnv = process.env): string =>
  env.CRUCIBLE_LAVAPIPE_DIR ?? path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"), "crucible", "lavapipe")

/** The ICD file of an installed lavapipe, if there is one. */
export const lavapipeIcd = (env: NodeJS.ProcessEnv = process.env): string | undefined => {
  const icd = path.join(lavapipeDir(env), "lvp_icd.json")
  return fs.existsSync(icd) ? icd : undefined
}



/**
 * A WebGPU device with the adapter's largest buffer limits. Chooses the Vulkan driver only when
 * none was chosen (`VK_DRIVER_FILES`/`VK_ICD_FILENAMES` unset) and lavapipe is installed.
 */
export const acquire = (options: {
  readonly env?: NodeJS.ProcessEnv
  /** Idle bytes the buffer pool keeps at most (default `BufferPool.defaultBudget`: 1 GiB, ≤ maxBufferSize/4). */
  readonly bufferBudget?: number
} = {}): Effect.Effect<GpuHandle, GpuError> =>
  Effect.gen(function* () {
    const env = options.env ?? process.env
    let driverFiles: string | undefined
    if (env.VK_DRIVER_FILES === undefined && env.VK_ICD_FILENAMES === undefined) {
      driverFiles = lavapipeIcd(env)
      if (driverFiles !== undefined) process.env.VK_DRIVER_FILES = driverFiles
    }
    const webgpu = yield* Effect.tryPromise({
      try: () => importOptional("webgpu"),
      catch: (cause) =>
        new GpuError({ reason: "NotInstalled", detail: `the optional package \`webgpu\` (Dawn) cannot be loaded (${describeCause(cause)}); install it next to @crucible/strategies (\`pnpm --filter @crucible/strategies add webgpu@0.6.2\`)` })
    })
    const instance: GPU = yield* Effect.try({
      try: () => {
        Object.assign(globalThis, webgpu.globals)
        const gpu = webgpu.create([])
        Object.defineProperty(globalThis, "navigator", { value: { gpu }, configurable: true, writable: true })
        return gpu
      },
      catch: (cause) => new GpuError({ reason: "NoAdapter", detail: `Dawn did not start (${describeCause(cause)}); a Vulkan loader (Debian: libvulkan1) and driver are needed` })
    })
    const adapter: GPUAdapter | null = yield* Effect.tryPromise({
      try: (): Promise<GPUAdapter | null> => instance.requestAdapter(),
      catch: (cause) => new GpuError({ reason: "NoAdapter", detail: describeCause(cause) })
    })
    if (adapter === null) {
      return yield* new GpuError({
        reason: "NoAdapter",
        detail: "no WebGPU adapter: no Vulkan driver Dawn accepts (a GPU's driver, or lavapipe from Mesa ≥ 25: run scripts/setup-lavapipe.sh, or point VK_DRIVER_FILES at an ICD file)"
      })
    }
    const device: GPUDevice = yield* Effect.tryPromise({
      try: () =>
        adapter.requestDevice({
          requiredLimits: {
            maxBufferSize: adapter.limits.maxBufferSize,
            maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
            maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
            maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
            maxComputeWorkgroupSizeX: adapter.limits.maxComputeWorkgroupSizeX
          }
        }),
      catch: (cause) => new GpuError({ reason: "NoDevice", detail: describeCause(cause) })
    })
    const a = adapter.info
    return {
      device,
      adapter,
      instance,
      slot: yield* Semaphore.make(1),
      pipelines: new Map(),
      buffers: BufferPool.make(device, options.bufferBudget),
      info: {
        vendor: a.vendor,
        architecture: a.architecture,
        device: a.device,
        description: a.description,
        isFallbackAdapter: (a as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false,
        maxBufferSize: adapter.limits.maxBufferSize,
        maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
        ...(driverFiles === undefined ? {} : { driverFiles })
      }
    }
  })

/** Why the GPU tests cannot run here (no `webgpu` package, no Vulkan loader, no lavapipe), or undefined. */
export const unavailable = (env: NodeJS.ProcessEnv = process.env): string | undefined => {
  if (env.VK_DRIVER_FILES === undefined && env.VK_ICD_FILENAMES === undefined && lavapipeIcd(env) === undefined) {
    return `no Vulkan driver for WebGPU: lavapipe is not installed at ${lavapipeDir(env)} (run scripts/setup-lavapipe.sh) and VK_DRIVER_FILES is not set.`
  }
  return undefined
}
