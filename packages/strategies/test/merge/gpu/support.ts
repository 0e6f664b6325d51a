/// <reference types="@webgpu/types" />
/**
 * The GPU tests' device: one Dawn device on lavapipe (or the machine's Vulkan driver) per test
 * file. Without one the tests are skipped with the reason `Gpu.unavailable()` gives — except in
 * CI (`CI=true`), which installs lavapipe (scripts/setup-lavapipe.sh), so there it is a failure.
 */
import { Effect } from "effect"
import type { TestContext } from "vitest"
import * as Gpu from "../../../src/gpu/Gpu.ts"

/** Why the GPU tests cannot run here, or undefined. */
export const gpuMissing: string | undefined = Gpu.unavailable()

/** For `beforeEach`: skips with the reason, or fails in CI. */
export const skipWithoutGpu = (context: TestContext): void => {
  if (gpuMissing === undefined) return
  if (process.env.CI === "true") throw new Error(`${gpuMissing} CI installs lavapipe (scripts/setup-lavapipe.sh), so here this is a failure.`)
  context.skip(gpuMissing)
}

let handle: Promise<Gpu.GpuHandle> | undefined

/** The file's device, acquired once (the handle stays referenced for the process). */
export const device = async (): Promise<GPUDevice> => {
  handle ??= Effect.runPromise(Gpu.acquire())
  return (await handle).device
}

/** The handle itself (for `GpuMerge.fromHandle`). */
export const gpuHandle = async (): Promise<Gpu.GpuHandle> => {
  await device()
  return handle!
}
