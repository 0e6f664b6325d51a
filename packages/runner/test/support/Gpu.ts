// The runner's GPU tests need a Vulkan driver for WebGPU (lavapipe from scripts/setup-lavapipe.sh, or a GPU's).
import * as Gpu from "@crucible/strategies/gpu/Gpu"
import type { TestContext } from "vitest"
import { skipUnlessPresent } from "./Requires.ts"

/** For a `beforeEach` (or a test's first line): skips without a driver, fails in CI. */
export const skipWithoutGpu = (context: TestContext): void => skipUnlessPresent(context, Gpu.unavailable())
