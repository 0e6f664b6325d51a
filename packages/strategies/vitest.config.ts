import { defineProject } from "vitest/config"
import { maxWorkers } from "../../vitest.workers.ts"

export default defineProject({ test: { name: "strategies", maxWorkers, include: ["test/**/*.test.ts"], setupFiles: ["../../vitest.setup.ts"], testTimeout: 60_000, hookTimeout: 60_000 } })
