/**
 * When the WebGPU tests run: on a real Vulkan driver (lavapipe from scripts/setup-lavapipe.sh, or a
 * GPU's), through the optional `webgpu` package. Outside CI a missing piece skips them with the
 * reason; in CI (`CI=true`, where .ci/run installs lavapipe) it is a failure.
 */
import { createRequire } from "node:module"
import type { TestContext } from "vitest"
import * as Gpu from "../../src/gpu/Gpu.ts"

const resolvable = (specifier: string): boolean => {
  try {
    createRequire(import.meta.url).resolve(specifier)
    return true
  } catch {
    return false
  }
}

/** Why the `webgpu` packages cannot be loaded here, or undefined. */
export const webgpuPackagesMissing = (): string | undefined => {
  const missing = ["webgpu", "@tensorflow/tfjs-backend-webgpu"].filter((p) => !resolvable(p))
  return missing.length === 0 ? undefined : `the optional packages ${missing.join(", ")} are not installed (pnpm install installs them)`
}

/** Why the GPU tests cannot run here (no packages, no Vulkan driver), or undefined. */
export const gpuMissing = (): string | undefined => webgpuPackagesMissing() ?? Gpu.unavailable()

/** For a `beforeEach`: skips with `missing` as the reason, except in CI where it fails. */
export const skipWithoutGpu = (context: TestContext, missing: string | undefined): void => {
  if (missing === undefined) return
  if (process.env.CI === "true") throw new Error(`${missing}; CI installs lavapipe (.ci/run runs scripts/setup-lavapipe.sh), so here this is a failure.`)
  console.warn(`skipped: ${missing}`)
  context.skip(missing)
}
