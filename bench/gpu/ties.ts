/**
 * The task-arithmetic kernels' end-to-end time on the GPU (`--ties` rows of bench/gpu): TIES over
 * a base and 3 float32 models of N elements through `gpu/TaskArithmetic.merge` (histograms, cuts,
 * the output pass, read-backs), and the range-wise kernels (`gpu/RangeWise.prepare` then `apply`
 * over the whole tensor) on bf16 copies of the same inputs, each run `repeats` times with the run's
 * `GpuMerge` provided (pipelines compiled once, as in a run), best of. Check: the GPU's selectors
 * equal the CPU's (`TaskStatistics.prepare`), so the kept sets are the CPU's.
 */
import * as DType from "../../packages/core/src/tensor/DType.ts"
import * as Random from "../../packages/strategies/src/backend/Random.ts"
import { Effect, Result } from "../merge/effect.ts"
import type * as Gpu from "../../packages/strategies/src/gpu/Gpu.ts"
import { GpuMerge } from "../../packages/strategies/src/merge/GpuMerge.ts"
import * as GpuRange from "../../packages/strategies/src/merge/gpu/RangeWise.ts"
import * as GpuTask from "../../packages/strategies/src/merge/gpu/TaskArithmetic.ts"
import type { PackedInput } from "../../packages/strategies/src/merge/kernels/PackedInput.ts"
import * as Kernel from "../../packages/strategies/src/merge/kernels/TaskArithmetic.ts"
import * as TaskStatistics from "../../packages/strategies/src/merge/kernels/TaskStatistics.ts"

/** What the rows report. */
export interface TiesFigures {
  readonly n: number
  readonly models: number
  /** Best wall time of one `gpu/TaskArithmetic.merge` (ms). */
  readonly tiesMs: number
  /** Best wall time of `gpu/RangeWise.prepare` + `apply` over the tensor, bf16 inputs (ms). */
  readonly rangeWiseMs: number
  /** Buffers the handle's pool created over all repeats, and takes it served from idle buffers. */
  readonly pool?: { readonly created: number; readonly reused: number } | undefined
  readonly check: "ok" | string
}

// Seeded (the project's generator, backend/Random.ts): the inputs are the same on every run.
const family = (n: number, count: number) => {
  const random = Random.make(0x9e3779b9)
  const next = () => random.uniform(-0.5, 0.5)
  const base = Float32Array.from({ length: n }, () => next())
  // Task vectors quantised to 1/256: many equal magnitudes, as fine-tunes in bf16 have.
  const models = Array.from({ length: count }, () => Float32Array.from(base, (b) => b + Math.round(next() * 8) / 256))
  return { base, models }
}

/** The TIES rows on `handle`'s device. */
export const tiesBench = async (handle: Gpu.GpuHandle, n: number, repeats: number): Promise<TiesFigures> => {
  const count = 3
  const { base, models } = family(n, count)
  const plan = Result.getOrThrow(Kernel.plan({ ...Kernel.presets.ties, weights: [1, 0.6, 0.8], density: 0.3, lambda: 0.9 }, [n], count, "t"))
  const cpu = TaskStatistics.prepare(plan, base, models)
  const packed: Array<PackedInput> = [base, ...models].map((a) => ({ bytes: DType.fromNumbers(a, "BF16"), dtype: "BF16" }))
  const gpuMerge = GpuMerge.ofHandle(handle)
  const run = <A, E>(effect: Effect.Effect<A, E, GpuMerge>) => Effect.runPromise(Effect.provideService(effect, GpuMerge, gpuMerge))
  const device = handle.device
  let check = "ok"
  let tiesMs = Infinity
  let rangeWiseMs = Infinity
  const before = gpuMerge.buffers?.stats()
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now()
    const result = await run(GpuTask.merge(device, plan, base, models))
    tiesMs = Math.min(tiesMs, performance.now() - t0)
    if (JSON.stringify(result.prepared.selectors) !== JSON.stringify(cpu.selectors)) check = "the GPU's TIES selectors differ from the CPU's"
    const t1 = performance.now()
    const prepared = await run(GpuRange.prepare(device, plan, packed))
    await run(GpuRange.apply(device, prepared, packed, 0, n))
    rangeWiseMs = Math.min(rangeWiseMs, performance.now() - t1)
  }
  const after = gpuMerge.buffers?.stats()
  const pool = before === undefined || after === undefined ? undefined : { created: after.created - before.created, reused: after.reused - before.reused }
  return { n, models: count, tiesMs, rangeWiseMs, pool, check }
}
