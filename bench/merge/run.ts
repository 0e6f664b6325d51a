/** `node bench/merge/run.ts`: the merge benchmarks (today: the kernel bandwidth of kernels.ts). */
import "./kernels.ts"
