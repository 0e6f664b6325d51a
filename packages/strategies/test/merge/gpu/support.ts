/// <reference types="@webgpu/types" />
/**
 * The GPU tests' device: one Dawn device on lavapipe (or the machine's Vulkan driver) per test
 * file. Without one the tests are skipped with the reason `test/support/Gpu.ts` gives — except in
 * CI (`CI=true`), which installs lavapipe (scripts/setup-lavapipe.sh), so there it is a failure.
 */
import { Effect } from "effect"
import type { TestContext } from "vitest"
import * as Gpu from "../../../src/gpu/Gpu.ts"
import { GpuMerge } from "../../../src/merge/GpuMerge.ts"
import * as Support from "../../support/Gpu.ts"

/** Why the GPU tests cannot run here (no `webgpu` package, no Vulkan driver), or undefined. */
const gpuMissing: string | undefined = Support.gpuMissing()

/** For `beforeEach`: skips with the reason, or fails in CI (test/support/Gpu.ts). */
export const skipWithoutGpu = (context: TestContext): void => Support.skipWithoutGpu(context, gpuMissing)

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

/** Runs `effect` with the file's handle as the run's `GpuMerge`, so the pipelines compile once for the file (lavapipe compiles slowly). */
export const throughGpuMerge = async <A, E>(effect: Effect.Effect<A, E, GpuMerge>): Promise<A> =>
  Effect.runPromise(Effect.provide(effect, GpuMerge.fromHandle(await gpuHandle())))
