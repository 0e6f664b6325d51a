import { defineProject } from "vitest/config"
import { maxWorkers } from "../vitest.workers.ts"

// Each example is an end-to-end test of a real pipeline: minutes, not seconds.
export default defineProject({ test: { name: "examples", maxWorkers, include: ["**/*.test.ts"], exclude: ["**/node_modules/**"], testTimeout: 600_000, hookTimeout: 600_000 } })
