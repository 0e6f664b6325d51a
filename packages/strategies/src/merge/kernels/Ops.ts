/**
 * The operations a pool worker runs on an element range, as one literal map from name to a pure
 * function of (arguments, start, end). The worker and the pool's in-thread path call the same
 * table, so a range gives the same bytes wherever it runs. Arguments are plain data plus
 * Float32Arrays and Uint8Arrays (shared memory, resolved from `ArrayRef`s by the thread that runs them).
 *
 * @since 0.1.0
 */
import * as ArceeFusion from "./ArceeFusion.ts"
import * as Fisher from "./Fisher.ts"
import * as Gram from "./Gram.ts"
import * as Karcher from "./Karcher.ts"
import * as ModelStock from "./ModelStock.ts"
import * as NearSwap from "./NearSwap.ts"
import * as NonFinite from "./NonFinite.ts"
import * as NuSlerp from "./NuSlerp.ts"
import * as Packed from "./Packed.ts"
import type { PackedInput } from "./PackedInput.ts"
import * as PackedTaskArithmetic from "./PackedTaskArithmetic.ts"
import * as Sce from "./Sce.ts"
import * as Select from "./Select.ts"
import type { SimdKernels } from "./Simd.ts"
import type * as TiesSimd from "./TiesSimd.ts"
import type { Selector } from "./Sparsify.ts"
import * as TaskArithmetic from "./TaskArithmetic.ts"
import type * as TaskDiagnostics from "./TaskDiagnostics.ts"
import * as TaskStatistics from "./TaskStatistics.ts"
import { weightedSum } from "./WeightedSum.ts"

/** What an op's function receives besides its arguments. @category models */
export interface Context {
  /** The SIMD kernels of this thread's arena memory, when there is one. */
  readonly simd: SimdKernels | undefined
  /** The packed (bf16/f16/f32 bytes) kernels of the same memory, when there is one. */
  readonly packed?: Packed.PackedKernels | undefined
  /** This thread's range-wise window kernels (`TiesSimd.ts`), reused across calls; a fresh one per call without it. */
  readonly ties?: TiesSimd.TiesCache | undefined
}

/** The weighted sum of this thread: SIMD when every array is in the arena, else the plain loop (same bits). */
const sumWith = (ctx: Context): typeof weightedSum => (out, inputs, coefficients, start = 0, end = out.length) => {
  if (ctx.simd === undefined || !ctx.simd.weightedSum(out, inputs, coefficients, start, end)) weightedSum(out, inputs, coefficients, start, end)
}

type F32 = Float32Array

/** The operations, by name. @category ops */
export const ops = {
  copy: (a: { out: F32; input: F32 }, start: number, end: number): void => a.out.set(a.input.subarray(start, end), start),
  weightedSum: (a: { out: F32; inputs: ReadonlyArray<F32>; coefficients: ReadonlyArray<number> }, start: number, end: number, ctx: Context): void =>
    sumWith(ctx)(a.out, a.inputs, a.coefficients, start, end),
  taskArithmetic: (
    a: { prepared: TaskArithmetic.Prepared; out: F32; base: F32; models: ReadonlyArray<F32>; offset: number },
    start: number,
    end: number,
    ctx: Context
  ): TaskDiagnostics.Partial | undefined => TaskArithmetic.apply(a.prepared, a.out, a.base, a.models, start, end, a.offset, sumWith(ctx)),
  modelStock: (a: { plan: ModelStock.ModelStockPlan; out: F32; base: F32; models: ReadonlyArray<F32> }, start: number, end: number, ctx: Context): void =>
    ModelStock.apply(a.plan, a.out, a.base, a.models, start, end, sumWith(ctx)),
  fisher: (a: { plan: Fisher.FisherPlan; out: F32; models: ReadonlyArray<F32>; fishers: ReadonlyArray<F32> }, start: number, end: number): void =>
    Fisher.apply(a.plan, a.out, a.models, a.fishers, start, end),
  // The methods of kernels/{NearSwap,NuSlerp,Karcher,Sce,ArceeFusion}.ts (multi-pass ones as one op, `Step` by pass).
  nearSwap: (a: { t: number; out: F32; base: F32; model: F32 }, start: number, end: number): void => NearSwap.apply(a.t, a.out, a.base, a.model, start, end),
  nuSlerpSums: (a: { a: F32; b: F32; base: F32 | undefined }, start: number, end: number): Float64Array => NuSlerp.sumPartials(a.a, a.b, a.base, start, end),
  nuSlerpMix: (a: { cx: number; cy: number; out: F32; a: F32; b: F32; base: F32 | undefined }, start: number, end: number): void =>
    NuSlerp.mix(a.cx, a.cy, a.out, a.a, a.b, a.base, start, end),
  nuSlerpVectors: (a: { params: NuSlerp.NuSlerpParams; shape: ReadonlyArray<number>; out: F32; a: F32; b: F32; base: F32 | undefined }, start: number, end: number): void =>
    NuSlerp.applyVectors(a.params, a.shape, a.out, a.a, a.b, a.base, start, end),
  karcher: (a: Karcher.Step, start: number, end: number): ReturnType<typeof Karcher.step> => Karcher.step(a, start, end),
  sce: (a: Sce.Step, start: number, end: number): ReturnType<typeof Sce.step> => Sce.step(a, start, end),
  arceeFusion: (a: ArceeFusion.Step, start: number, end: number): ReturnType<typeof ArceeFusion.step> => ArceeFusion.step(a, start, end),
  gram: (a: { inputs: ReadonlyArray<F32>; base: F32 | undefined; block: number }, start: number, end: number): Float64Array =>
    Gram.partials(a.inputs, a.base, start, end, a.block),
  countHigh: (a: { x: F32; base: F32 }, start: number, end: number): Uint32Array => {
    const counts = new Uint32Array(Select.HIGH_BUCKETS)
    Select.countHigh(a.x, a.base, start, end, counts)
    return counts
  },
  countLow: (a: { x: F32; base: F32; highs: ReadonlyArray<number> }, start: number, end: number): Array<Uint32Array> => {
    const counts = a.highs.map(() => new Uint32Array(Select.LOW_BUCKETS))
    Select.countLow(a.x, a.base, start, end, a.highs, counts)
    return counts
  },
  nthEqual: (a: { x: F32; base: F32; bits: number; nth: number }, start: number, end: number): number =>
    Select.nthEqual(a.x, a.base, start, end, a.bits, a.nth),
  l1: (a: { selector: Selector; x: F32; base: F32; offset: number; block: number }, start: number, end: number): Float64Array =>
    TaskStatistics.l1Partials(a.selector, a.x, a.base, start, end, a.offset, a.block),
  nonFinite: (a: { x: F32 }, start: number, end: number): { readonly first: number; readonly count: number } => {
    const first = NonFinite.firstNonFinite(a.x, start, end)
    return { first, count: first < 0 ? 0 : NonFinite.countNonFinite(a.x, first, end) }
  },
  // Task arithmetic on inputs packed in their dtype (`PackedTaskArithmetic.ts`): ranges are tensor indices.
  packedScan: (
    a: { inputs: ReadonlyArray<PackedInput>; ranked: ReadonlyArray<number>; guesses?: ReadonlyArray<PackedTaskArithmetic.LowGuess | undefined> },
    start: number,
    end: number,
    ctx: Context
  ): PackedTaskArithmetic.Scan => PackedTaskArithmetic.scan(a.inputs, a.ranked, start, end, ctx.ties, a.guesses),
  packedCountLow: (a: { inputs: ReadonlyArray<PackedInput>; requests: ReadonlyArray<PackedTaskArithmetic.LowRequest> }, start: number, end: number, ctx: Context): Array<Array<Uint32Array>> =>
    PackedTaskArithmetic.countLow(a.inputs, a.requests, start, end, ctx.ties),
  packedNthEqual: (a: { inputs: ReadonlyArray<PackedInput>; model: number; bits: number; nth: number }, start: number, end: number, ctx: Context): number =>
    PackedTaskArithmetic.nthEqual(a.inputs, a.model, a.bits, a.nth, start, end, ctx.ties),
  packedL1: (a: { inputs: ReadonlyArray<PackedInput>; model: number; selector: Selector }, start: number, end: number, ctx: Context): Float64Array =>
    PackedTaskArithmetic.l1(a.inputs, a.model, a.selector, start, end, ctx.ties),
  packedTaskArithmetic: (
    a: { prepared: TaskArithmetic.Prepared; inputs: ReadonlyArray<PackedInput>; out: F32; outStart: number; bf16: Uint8Array | undefined },
    start: number,
    end: number,
    ctx: Context
  ): PackedTaskArithmetic.Applied => PackedTaskArithmetic.apply(a.prepared, a.inputs, a.out, a.outStart, start, end, sumWith(ctx), a.bf16, true, ctx.ties),
  // Weighted sum and NaN/Inf scan on packed bf16/f16/f32 bytes (`Packed.ts`): ranges are elements.
  packedSum: (a: PackedSumArgs, start: number, end: number, ctx: Context): void => {
    if (ctx.packed === undefined || !ctx.packed.weightedSum(a.out, a.outDtype, a.inputs, a.inDtype, a.coefficients, start, end)) {
      Packed.weightedSumJs(a.out, a.outDtype, a.inputs, a.inDtype, a.coefficients, start, end)
    }
  },
  packedNonFinite: (a: { x: Uint8Array; dtype: Packed.PackedDType }, start: number, end: number, ctx: Context): boolean =>
    ctx.packed?.hasNonFinite(a.x, a.dtype, start, end) ?? Packed.hasNonFiniteJs(a.x, a.dtype, start, end)
} as const

/** `packedSum`: out = encode(outDtype, Σᵢ cᵢ·decode(inDtype, inputs[i])) on packed bytes (`Packed.ts`). @category ops */
export interface PackedSumArgs {
  readonly out: Uint8Array
  readonly outDtype: Packed.PackedDType
  readonly inputs: ReadonlyArray<Uint8Array>
  readonly inDtype: Packed.PackedDType
  readonly coefficients: ReadonlyArray<number>
}

/** @category ops */
export type Ops = typeof ops
/** @category ops */
export type OpName = keyof Ops
/** The arguments of an op. @category ops */
export type OpArgs<K extends OpName> = Parameters<Ops[K]>[0]
/** What an op returns for one range. @category ops */
export type OpResult<K extends OpName> = ReturnType<Ops[K]>

/** Runs `name` on `[start, end)` in this thread. @category ops */
export const run = <K extends OpName>(name: K, args: OpArgs<K>, start: number, end: number, ctx: Context): OpResult<K> =>
  (ops[name] as (a: OpArgs<K>, s: number, e: number, c: Context) => OpResult<K>)(args, start, end, ctx)
