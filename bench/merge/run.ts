/**
 * `node bench/merge/run.ts`: the end-to-end merge bench (`e2e.ts`: `crucible run` of linear and
 * TIES against a PyTorch script, file to file). `--kernels` runs the kernel bandwidth bench
 * (`kernels.ts`) instead; the remaining flags go to the chosen bench.
 */
const kernels = process.argv.includes("--kernels")
process.argv = process.argv.filter((a) => a !== "--kernels")
await import(kernels ? "./kernels.ts" : "./e2e.ts")
