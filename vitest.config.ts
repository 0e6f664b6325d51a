import { defineConfig } from "vitest/config"
import { LongFilesFirst } from "./vitest.sequencer.ts"
import { maxWorkers } from "./vitest.workers.ts"

// One vitest run over every package, so the test command and CI share one report.
export default defineConfig({
  test: {
    projects: ["packages/*", "examples"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    maxWorkers,
    sequence: { sequencer: LongFilesFirst },
    globalSetup: ["./vitest.global-setup.ts"]
  }
})
