import { defineProject } from "vitest/config"

export default defineProject({ test: { name: "runner", include: ["test/**/*.test.ts"], setupFiles: ["../../vitest.setup.ts"], testTimeout: 60_000, hookTimeout: 60_000 } })
