// What a test file needs from the machine (Postgres, a Vulkan driver for WebGPU): outside CI a
// missing piece skips its tests with the reason; in CI, which installs it (.ci/run), it fails.
import type { TestContext } from "vitest"

/** For a `beforeEach`: skips with `missing` as the reason, except in CI (`CI=true`), where it fails. */
export const skipUnlessPresent = (context: TestContext, missing: string | undefined): void => {
  if (missing === undefined) return
  if (process.env.CI === "true") throw new Error(`${missing} CI installs it (.ci/run), so here this is a failure.`)
  context.skip(missing)
}
