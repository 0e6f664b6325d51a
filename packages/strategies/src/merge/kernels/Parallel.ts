/**
 * The merge methods driven through a {@link Pool}: statistics phases split across workers and
 * combined exactly, then the elementwise phase on one range per worker. Each function gives the
 * same bytes as the single-threaded kernels, for any number of workers (the tests check 1, 2
 * and 4). Arrays must be whole tensors in shared memory (an `Arena`, or a `SharedArrayBuffer`).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import * as ArceeFusion from "./ArceeFusion.ts"
import * as BlockSums from "./BlockSums.ts"
import type * as Fisher from "./Fisher.ts"
import * as Gram from "./Gram.ts"
import * as Karcher from "./Karcher.ts"
import type { MergeKernelError } from "./KernelError.ts"
import * as ModelStock from "./ModelStock.ts"
import * as Multislerp from "./Multislerp.ts"
import * as NuSlerp from "./NuSlerp.ts"
import type { Passes } from "./Passes.ts"
import type { NonFiniteReport } from "./NonFinite.ts"
import type { OpArgs, OpName } from "./Ops.ts"
import type { Pool, PoolError } from "./Pool.ts"
import * as Sce from "./Sce.ts"
import * as Select from "./Select.ts"
import * as Slerp from "./Slerp.ts"
import type { Selector } from "./Sparsify.ts"
import type { Prepared, TaskArithmeticPlan } from "./TaskArithmetic.ts"
import * as TaskDiagnostics from "./TaskDiagnostics.ts"
import * as TaskStatistics from "./TaskStatistics.ts"

/** `out = Σ cᵢ·inputs[i]` on all workers (linear, passthrough, or any planned coefficients). @category kernels */
export const weightedSum: (
  pool: Pool,
  out: Float32Array,
  inputs: ReadonlyArray<Float32Array>,
  coefficients: ReadonlyArray<number>
) => Effect.Effect<void, PoolError> =
  Effect.fn("Parallel.weightedSum")(function* (pool, out, inputs, coefficients) {
    yield* pool.run("weightedSum", { out, inputs, coefficients }, pool.split(out.length))
  })

/** `out = input`, a range per worker (passthrough; and the memcpy baseline of the benchmark). @category kernels */
export const copy: (pool: Pool, out: Float32Array, input: Float32Array) => Effect.Effect<void, PoolError> =
  Effect.fn("Parallel.copy")(function* (pool, out, input) {
    yield* pool.run("copy", { out, input }, pool.split(out.length))
  })

/** The Gram matrix of `inputs` (task vectors with `base`), reduced over fixed blocks. @category statistics */
export const gram: (pool: Pool, inputs: ReadonlyArray<Float32Array>, base?: Float32Array, block?: number) => Effect.Effect<Float64Array, PoolError> =
  Effect.fn("Parallel.gram")(function* (pool, inputs, base, block = Gram.BLOCK) {
    const parts = yield* pool.run("gram", { inputs, base, block }, pool.split(inputs[0]?.length ?? 0, block))
    return Gram.combine(parts, inputs.length)
  })

/** SLERP of `a` and `b` (task vectors with a base) into `out`; returns its plan. @category kernels */
export const slerp: (
  pool: Pool,
  params: Slerp.SlerpParams,
  out: Float32Array,
  a: Float32Array,
  b: Float32Array,
  base: Float32Array | undefined,
  tensor: string
) => Effect.Effect<Slerp.SlerpPlan, MergeKernelError | PoolError> =
  Effect.fn("Parallel.slerp")(function* (pool, params, out, a, b, base, tensor) {
    const plan = yield* Effect.fromResult(Slerp.plan(params, yield* gram(pool, [a, b], base), base !== undefined, tensor))
    yield* weightedSum(pool, out, base === undefined ? [a, b] : [base, a, b], plan.coefficients)
    return plan
  })

/** Multi-SLERP of `models` (task vectors with a base) into `out`. @category kernels */
export const multislerp: (
  pool: Pool,
  params: Multislerp.MultislerpParams,
  out: Float32Array,
  models: ReadonlyArray<Float32Array>,
  base: Float32Array | undefined,
  tensor: string
) => Effect.Effect<Multislerp.MultislerpPlan, MergeKernelError | PoolError> =
  Effect.fn("Parallel.multislerp")(function* (pool, params, out, models, base, tensor) {
    const plan = yield* Effect.fromResult(Multislerp.plan(params, yield* gram(pool, models, base), base !== undefined, tensor))
    yield* weightedSum(pool, out, base === undefined ? models : [base, ...models], plan.coefficients)
    return plan
  })

/** Model stock of `models` around `base` into `out`, for a tensor of `shape`. @category kernels */
export const modelStock: (
  pool: Pool,
  params: ModelStock.ModelStockParams,
  shape: ReadonlyArray<number>,
  out: Float32Array,
  base: Float32Array,
  models: ReadonlyArray<Float32Array>,
  tensor: string
) => Effect.Effect<ModelStock.ModelStockPlan, MergeKernelError | PoolError> =
  Effect.fn("Parallel.modelStock")(function* (pool, params, shape, out, base, models, tensor) {
    const rowLength = Math.max(1, ModelStock.rowLength(shape, params))
    const parts = yield* pool.run("gram", { inputs: models, base, block: rowLength }, pool.split(base.length, rowLength))
    const grams = BlockSums.concat(parts)
    const plan = yield* Effect.fromResult(ModelStock.plan(grams, models.length, rowLength, tensor))
    yield* pool.run("modelStock", { plan, out, base, models }, pool.split(out.length))
    return plan
  })

/** Fisher-weighted average into `out` (plan from `Fisher.plan`). @category kernels */
export const fisher: (
  pool: Pool,
  plan: Fisher.FisherPlan,
  out: Float32Array,
  models: ReadonlyArray<Float32Array>,
  fishers: ReadonlyArray<Float32Array>
) => Effect.Effect<void, PoolError> =
  Effect.fn("Parallel.fisher")(function* (pool, plan, out, models, fishers) {
    yield* pool.run("fisher", { plan, out, models, fishers }, pool.split(out.length))
  })

/** The statistics of a task-arithmetic plan (magnitude cuts, L1 factors), split across workers. @category statistics */
export const prepareTaskArithmetic: (
  pool: Pool,
  plan: TaskArithmeticPlan,
  base: Float32Array,
  models: ReadonlyArray<Float32Array>
) => Effect.Effect<Prepared, PoolError> =
  Effect.fn("Parallel.prepareTaskArithmetic")(function* (pool, plan, base, models) {
    const ranges = pool.split(base.length)
    const selectors = yield* Effect.forEach(
      plan.models,
      (m, i): Effect.Effect<Selector, PoolError> =>
        m.selector.kind !== "ranks"
          ? Effect.succeed(m.selector)
          : Effect.map(cuts(pool, models[i]!, base, [m.selector.lo, m.selector.hi], ranges), ([lo, hi]) => ({ kind: "window", lo: lo!, hi: hi! })),
      { concurrency: "unbounded" }
    )
    const l1 = plan.rescale !== "l1"
      ? plan.models.map(() => [])
      : yield* Effect.forEach(
        plan.models,
        (_, i) => pool.run("l1", { selector: selectors[i]!, x: models[i]!, base, offset: 0, block: Gram.BLOCK }, ranges),
        { concurrency: "unbounded" }
      )
    return TaskStatistics.finish(plan, selectors, (i) => l1[i]!)
  })

/**
 * Generalized task arithmetic (TIES, DARE, …) into `out`: statistics, then the elementwise phase.
 * Returns the plan with its statistics and the tensor's diagnostics (the ranges' partials
 * combined in order: the numbers one thread reports), undefined on the weighted-sum fast path.
 *
 * @category kernels
 */
export const taskArithmetic: (
  pool: Pool,
  plan: TaskArithmeticPlan,
  out: Float32Array,
  base: Float32Array,
  models: ReadonlyArray<Float32Array>
) => Effect.Effect<{ readonly prepared: Prepared; readonly diagnostics: TaskDiagnostics.Diagnostics | undefined }, PoolError> =
  Effect.fn("Parallel.taskArithmetic")(function* (pool, plan, out, base, models) {
    const prepared = yield* prepareTaskArithmetic(pool, plan, base, models)
    const parts = yield* pool.run("taskArithmetic", { prepared, out, base, models, offset: 0 }, pool.split(out.length))
    const partials = parts.filter((p): p is TaskDiagnostics.Partial => p !== undefined)
    return { prepared, diagnostics: partials.length === 0 ? undefined : TaskDiagnostics.summarize(plan, partials, out.length) }
  })

/** The parallel form of `Select.cuts`: the same three passes, each split across the ranges. @category statistics */
export const cuts: (
  pool: Pool,
  x: Float32Array,
  base: Float32Array,
  ranks: ReadonlyArray<number>,
  ranges: ReadonlyArray<{ readonly start: number; readonly end: number }>
) => Effect.Effect<Array<Select.Cut>, PoolError> =
  Effect.fn("Parallel.cuts")(function* (pool, x, base, ranks, ranges) {
    const n = x.length
    const inside = [...new Set(ranks.filter((r) => r > 0 && r < n))]
    const found = new Map<number, Select.Cut>()
    if (inside.length > 0) {
      const high = sum(yield* pool.run("countHigh", { x, base }, ranges), Select.HIGH_BUCKETS)
      const located = inside.map((r) => ({ rank: r, ...Select.locate(high, r) }))
      const lows = yield* pool.run("countLow", { x, base, highs: located.map((l) => l.bucket) }, ranges)
      for (const [c, l] of located.entries()) {
        const low = Select.locate(sum(lows.map((perRange) => perRange[c]!), Select.LOW_BUCKETS), l.rank - l.above)
        const bits = ((l.bucket << 16) | low.bucket) >>> 0
        let nth = l.rank - l.above - low.above
        if (nth === 0) {
          found.set(l.rank, { bits, index: 0 })
          continue
        }
        let r = 0
        while (nth >= lows[r]![c]![low.bucket]!) nth -= lows[r++]![c]![low.bucket]!
        const [index] = yield* pool.run("nthEqual", { x, base, bits, nth }, [ranges[r]!])
        found.set(l.rank, { bits, index: index! })
      }
    }
    return ranks.map((r) => (r <= 0 ? Select.START : r >= n ? Select.END : found.get(r)!))
  })

/** The first non-finite value among named arrays, scanned on all workers. @category predicates */
export const findNonFinite: (
  pool: Pool,
  arrays: ReadonlyArray<{ readonly tensor: string; readonly values: Float32Array }>
) => Effect.Effect<NonFiniteReport | undefined, PoolError> =
  Effect.fn("Parallel.findNonFinite")(function* (pool, arrays) {
    for (const { tensor, values } of arrays) {
      const ranges = pool.split(values.length)
      const parts = yield* pool.run("nonFinite", { x: values }, ranges)
      const firstRange = parts.findIndex((p) => p.first >= 0)
      if (firstRange >= 0) {
        const count = parts.reduce((t, p) => t + p.count, 0)
        return { tensor, index: parts[firstRange]!.first, value: values[parts[firstRange]!.first]!, count }
      }
    }
    return undefined
  })

/** NearSwap of `model` towards `base` into `out`, a range per worker. @category kernels */
export const nearSwap: (pool: Pool, t: number, out: Float32Array, base: Float32Array, model: Float32Array) => Effect.Effect<void, PoolError> =
  Effect.fn("Parallel.nearSwap")(function* (pool, t, out, base, model) {
    yield* pool.run("nearSwap", { t, out, base, model }, pool.split(out.length))
  })

/**
 * NuSLERP of `a` and `b` (task vectors with a base) into `out`: a flat tensor's block sums per range,
 * then the mix per range; rows or columns as whole vectors per worker.
 *
 * @category kernels
 */
export const nuSlerp: (
  pool: Pool,
  params: NuSlerp.NuSlerpParams,
  shape: ReadonlyArray<number>,
  out: Float32Array,
  a: Float32Array,
  b: Float32Array,
  base: Float32Array | undefined
) => Effect.Effect<void, PoolError> =
  Effect.fn("Parallel.nuSlerp")(function* (pool, params, shape, out, a, b, base) {
    if (!NuSlerp.isFlat(shape, params)) {
      return yield* pool.run("nuSlerpVectors", { params, shape, out, a, b, base }, pool.split(out.length, NuSlerp.vectors(shape, params).length))
    }
    const [xx, yy, xy] = BlockSums.combine(yield* pool.run("nuSlerpSums", { a, b, base }, pool.split(out.length)), 3)
    const [cx, cy] = NuSlerp.coefficients(params.t, xx!, yy!, xy!)
    yield* pool.run("nuSlerpMix", { cx, cy, out, a, b, base }, pool.split(out.length))
  })

/** The Karcher merge of `models` into `out`: each pass of `Karcher.passes` on a range per worker. @category kernels */
export const karcher: (pool: Pool, params: Karcher.KarcherParams, models: ReadonlyArray<Float32Array>, out: Float32Array) => Effect.Effect<Omit<Karcher.KarcherResult, "out">, PoolError> =
  Effect.fn("Parallel.karcher")(function* (pool, params, models, out) {
    const shared = (length: number) => new Float64Array(new SharedArrayBuffer(length * 8))
    return yield* drive(pool, "karcher", Karcher.passes(params, models, out, pool.split(out.length), shared))
  })

/** SCE of `models` around `base` into `out`: each pass of `Sce.passes` on a range per worker. @category kernels */
export const sce: (pool: Pool, selectTopk: number, base: Float32Array, models: ReadonlyArray<Float32Array>, out: Float32Array) => Effect.Effect<Omit<Sce.SceResult, "out">, PoolError> =
  Effect.fn("Parallel.sce")(function* (pool, selectTopk, base, models, out) {
    return yield* drive(pool, "sce", Sce.passes(selectTopk, base, models, out, pool.split(out.length)))
  })

/** Arcee Fusion of `model` into `base` into `out`: rows' KL by row ranges, then the select and fuse passes per range. @category kernels */
export const arceeFusion: (pool: Pool, shape: ReadonlyArray<number>, base: Float32Array, model: Float32Array, out: Float32Array) => Effect.Effect<Omit<ArceeFusion.FusionResult, "out">, PoolError> =
  Effect.fn("Parallel.arceeFusion")(function* (pool, shape, base, model, out) {
    const rows = pool.split(out.length, Math.max(1, ArceeFusion.rowLength(shape, out.length)))
    return yield* drive(pool, "arceeFusion", ArceeFusion.passes(shape, base, model, out, rows, pool.split(out.length)))
  })

/** Runs a multi-pass kernel (`Passes.ts`) on the pool: each pass's op on its ranges. */
const drive = <K extends OpName, Out>(pool: Pool, op: K, passes: Passes<OpArgs<K>, Out>): Effect.Effect<Out, PoolError> =>
  Effect.gen(function* () {
    let next = passes.next()
    while (!next.done) next = passes.next(yield* pool.run(op, next.value.args, next.value.ranges))
    return next.value
  })

const sum = (parts: ReadonlyArray<Uint32Array>, size: number): Uint32Array => {
  const total = new Uint32Array(size)
  for (const p of parts) for (let b = 0; b < size; b++) total[b] = total[b]! + p[b]!
  return total
}
