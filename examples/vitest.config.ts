import { defineProject } from "vitest/config"

// Each example is an end-to-end test of a real pipeline: minutes, not seconds.
export default defineProject({ test: { name: "examples", include: ["**/*.test.ts"], exclude: ["**/node_modules/**"], testTimeout: 600_000, hookTimeout: 600_000 } })
