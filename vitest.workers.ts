// How many test files run at once. Every project sets it (each resolves its own, and vitest
// requires projects that run together to agree): vitest's default, one fewer than the cores,
// is one file at a time on a 2-core machine, while most files spend their time waiting on a
// `crucible` child process or use a single core. Two there; cores − 1 on larger machines.
// `npm test -- --maxWorkers=1` still overrides it.
import { availableParallelism } from "node:os"

export const maxWorkers = Math.max(2, availableParallelism() - 1)
