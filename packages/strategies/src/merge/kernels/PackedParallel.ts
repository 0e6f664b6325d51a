/**
 * The range-wise task-arithmetic merge driven over ranges (`PackedTaskArithmetic.ts`): on a
 * {@link Pool} one range per worker, or in the calling thread. Statistics are combined exactly
 * (histograms are integer counts, L1 sums are per block in block order) and apply is per element,
 * so the {@link Prepared} plan and the bytes are those of `TaskStatistics.prepare` and
 * `TaskArithmetic.apply` on whole float32 tensors, for any worker count.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { BLOCK } from "./Gram.ts"
import { type OpArgs, type OpName, type OpResult, run as runHere } from "./Ops.ts"
import type { PackedInput } from "./PackedInput.ts"
import * as PackedTaskArithmetic from "./PackedTaskArithmetic.ts"
import type { NonFiniteCount } from "./PackedTaskArithmetic.ts"
import { type Pool, PoolError, type Range, split } from "./Pool.ts"
import * as Select from "./Select.ts"
import type { Selector } from "./Sparsify.ts"
import type { Prepared, TaskArithmeticPlan } from "./TaskArithmetic.ts"
import type * as TaskDiagnostics from "./TaskDiagnostics.ts"
import * as TaskStatistics from "./TaskStatistics.ts"
import * as TiesSimd from "./TiesSimd.ts"

/** Where ops run: a pool's workers, or this thread. @category models */
export interface Runner {
  readonly split: (start: number, end: number) => ReadonlyArray<Range>
  readonly run: <K extends OpName>(op: K, args: OpArgs<K>, ranges: ReadonlyArray<Range>) => Effect.Effect<Array<OpResult<K>>, PoolError>
}

/** Ranges of `[start, end)` on the block grid (start on it), one per worker. */
const splitter = (parts: number) => (start: number, end: number): ReadonlyArray<Range> =>
  split(end - start, parts, BLOCK).map((r) => ({ start: start + r.start, end: start + r.end }))

/** A runner on `pool`, or in this thread (one range) without one. @category constructors */
export const runner = (pool: Pool | undefined): Runner => {
  if (pool !== undefined) return { split: splitter(pool.workers), run: (op, args, ranges) => pool.run(op, args, ranges) }
  // This thread's window kernels, reused by every pass of the runner.
  const ctx = { simd: undefined, ties: TiesSimd.cache() }
  return {
    split: splitter(1),
    run: (op, args, ranges) =>
      Effect.try({
        try: () => ranges.map((r) => runHere(op, args, r.start, r.end, ctx)),
        catch: (cause) => new PoolError({ op, detail: cause instanceof Error ? cause.message : String(cause) })
      })
  }
}

/** The first input (base first) holding a non-finite value: its index in `inputs`, and where. @category models */
export interface NonFiniteInput extends NonFiniteCount {
  readonly input: number
}

// The distinct ranks of a rank-cut model's cuts inside (0, n): the ends need no cut.
const cutRanks = (plan: TaskArithmeticPlan, model: number, n: number): Array<number> => {
  const s = plan.models[model]!.selector as { readonly lo: number; readonly hi: number }
  return [...new Set([s.lo, s.hi].filter((r) => r > 0 && r < n))]
}

/** The first pass: non-finite inputs and the magnitude histograms the cuts need. @category statistics */
export interface Scanned {
  readonly nonFinite: NonFiniteInput | undefined
  readonly high: ReadonlyArray<Uint32Array>
  readonly ranked: ReadonlyArray<number>
  /** Per model in `ranked`: the low histograms of its guessed high buckets, per range (see {@link scan}); undefined where none. */
  readonly low?: ReadonlyArray<GuessedLows | undefined>
}

/** The low histograms the scan counted for high buckets [first, first + span) of one model, per range in order (as `PackedTaskArithmetic.Scan.low`: pairs of nonzero counts). @category statistics */
export interface GuessedLows {
  readonly first: number
  readonly span: number
  readonly perRange: ReadonlyArray<Uint32Array>
}

// The low histogram of candidate h over all ranges, from each range's pairs (position, count).
const guessedLow = (perRange: ReadonlyArray<Uint32Array>, h: number): Uint32Array => {
  const counts = new Uint32Array(Select.LOW_BUCKETS)
  for (const pairs of perRange) {
    for (let p = 0; p < pairs.length; p += 2) {
      const at = pairs[p]! - h * Select.LOW_BUCKETS
      if (at >= 0 && at < Select.LOW_BUCKETS) counts[at] = counts[at]! + pairs[p + 1]!
    }
  }
  return counts
}

// One range's count at low bucket `low` of candidate h, from its pairs (position, count); 0 where absent.
const guessedCount = (pairs: Uint32Array, h: number, low: number): number => {
  const at = h * Select.LOW_BUCKETS + low
  for (let p = 0; p < pairs.length; p += 2) if (pairs[p] === at) return pairs[p + 1]!
  return 0
}

/**
 * Scans `[0, n)` of every input: non-finite values, and the high histograms of the models `plan`
 * cuts by rank. On bf16 inputs it first guesses, from a sample of blocks, the high buckets the
 * cuts fall in, and counts their low histograms in the same pass: when the guess holds (the
 * usual case) {@link prepare} needs no low pass. The cuts are exact either way (a wrong guess
 * only costs that pass).
 *
 * @category statistics
 */
export const scan: (runner: Runner, plan: TaskArithmeticPlan, inputs: ReadonlyArray<PackedInput>, n: number) => Effect.Effect<Scanned, PoolError> =
  Effect.fn("PackedParallel.scan")(function* (runner, plan, inputs, n) {
    const ranked = plan.models.flatMap((m, i) => (m.selector.kind === "ranks" ? [i] : []))
    const guesses = yield* guess(runner, plan, inputs, n, ranked)
    const guessed = yield* runner.run("packedScan", { inputs, ranked, guesses }, runner.split(0, n))
    const located = guesses.length === 0 ? undefined : locatedHighs(plan, n, ranked, guesses, guessed)
    // A guess that missed a cut's bucket: the scan again, with the whole high histograms.
    const parts = guesses.length === 0 || located !== undefined ? guessed : yield* runner.run("packedScan", { inputs, ranked }, runner.split(0, n))
    let nonFinite: NonFiniteInput | undefined
    for (let k = 0; k < inputs.length && nonFinite === undefined; k++) {
      const hit = parts.find((p) => p.nonFinite[k]!.first >= 0)
      if (hit !== undefined) nonFinite = { input: k, ...hit.nonFinite[k]!, count: parts.reduce((t, p) => t + p.nonFinite[k]!.count, 0) }
    }
    const high = ranked.map((_, c) => located?.[c] ?? sum(parts.map((p) => p.high[c]!), Select.HIGH_BUCKETS))
    // With `located`, `parts` is the guessed scan, whose ranges all counted lows for every guessed model (`locatedHighs` checked).
    const low = ranked.map((_, c): GuessedLows | undefined => {
      const g = guesses[c]
      return located === undefined || g === undefined ? undefined : { ...g, perRange: parts.map((p) => p.low![c]!) }
    })
    return { nonFinite, high, ranked, low }
  })

/**
 * Where the scan counted guessed buckets instead of a model's high histogram: when every cut of
 * every such model falls inside its candidate buckets, a high histogram that locates those cuts
 * exactly as the whole one does (the count above the candidates in the top bucket, each
 * candidate's total in its own; nothing below, which no cut reaches) for those models, and the
 * scan's own for the others; undefined when a guess missed (or the scan counted no guess).
 */
const locatedHighs = (
  plan: TaskArithmeticPlan,
  n: number,
  ranked: ReadonlyArray<number>,
  guesses: ReadonlyArray<PackedTaskArithmetic.LowGuess | undefined>,
  parts: ReadonlyArray<PackedTaskArithmetic.Scan>
): Array<Uint32Array | undefined> | undefined => {
  const highs: Array<Uint32Array | undefined> = []
  for (const [c, model] of ranked.entries()) {
    const g = guesses[c]
    if (g === undefined) {
      highs.push(undefined)
      continue
    }
    const lows = parts.map((p) => p.low?.[c])
    const aboves = parts.map((p) => p.above?.[c])
    if (lows.some((l) => l === undefined) || aboves.some((a) => a === undefined)) return undefined
    const above = (aboves as Array<number>).reduce((t, a) => t + a, 0)
    const totals = Array.from({ length: g.span }, () => 0)
    for (const pairs of lows as Array<Uint32Array>) {
      for (let p = 0; p < pairs.length; p += 2) {
        const h = Math.floor(pairs[p]! / Select.LOW_BUCKETS)
        totals[h] = totals[h]! + pairs[p + 1]!
      }
    }
    const inWindow = totals.reduce((t, x) => t + x, 0)
    const top = g.first + g.span - 1
    const ranks = cutRanks(plan, model, n)
    // A cut above the candidates, below them, or counts above them with no bucket left to hold them: the guess missed.
    if (ranks.some((r) => r < above || r >= above + inWindow) || (above > 0 && top === Select.HIGH_BUCKETS - 1)) return undefined
    const high = new Uint32Array(Select.HIGH_BUCKETS)
    high[Select.HIGH_BUCKETS - 1] = above
    totals.forEach((t, h) => { high[g.first + h] = t })
    highs.push(high)
  }
  return highs
}

// Blocks sampled for the guess: 1 in 16, at least 8 and at most 32 (2M elements: the sampled rank
// of a 20% cut is within ~0.03% of the tensor's, well inside one high bucket of a smooth
// distribution); tensors of fewer than 2 × 8 blocks are not guessed.
const SAMPLE_EVERY = 16
const SAMPLE_MIN = 8
const SAMPLE_MAX = 32

// Per ranked model, the candidate high buckets of its cuts (the sampled buckets ± 1), from the
// high histograms of evenly spread single blocks; only where every input is bf16 (the path that
// counts guessed lows).
const guess = (runner: Runner, plan: TaskArithmeticPlan, inputs: ReadonlyArray<PackedInput>, n: number, ranked: ReadonlyArray<number>) =>
  Effect.gen(function* () {
    const blocks = Math.floor(n / BLOCK)
    const samples = Math.min(SAMPLE_MAX, Math.max(SAMPLE_MIN, Math.floor(blocks / SAMPLE_EVERY)))
    if (ranked.length === 0 || !PackedTaskArithmetic.readsInPlace(inputs) || blocks < 2 * samples) return []
    const stride = Math.floor(blocks / samples)
    const ranges = Array.from({ length: samples }, (_, s) => ({ start: (s * stride + (stride >> 1)) * BLOCK, end: (s * stride + (stride >> 1) + 1) * BLOCK }))
    const parts = yield* runner.run("packedScan", { inputs, ranked }, ranges)
    const sampled = samples * BLOCK
    return ranked.map((model, c): PackedTaskArithmetic.LowGuess | undefined => {
      const high = sum(parts.map((p) => p.high[c]!), Select.HIGH_BUCKETS)
      const buckets = cutRanks(plan, model, n).map((r) => Select.locate(high, Math.floor((r * sampled) / n)).bucket)
      if (buckets.length === 0 || buckets.some((b) => b < 0)) return undefined
      const first = Math.max(0, Math.min(...buckets) - 1)
      const span = Math.min(Select.HIGH_BUCKETS - 1, Math.max(...buckets) + 1) - first + 1
      return span <= TiesSimd.MAX_LOW_SPAN ? { first, span } : undefined
    })
  })

/** The rest of the statistics (magnitude cuts, L1 factors) after {@link scan}. @category statistics */
export const prepare: (runner: Runner, plan: TaskArithmeticPlan, inputs: ReadonlyArray<PackedInput>, n: number, scanned: Scanned) => Effect.Effect<Prepared, PoolError> =
  Effect.fn("PackedParallel.prepare")(function* (runner, plan, inputs, n, scanned) {
    const ranges = runner.split(0, n)
    const cuts = yield* cutsOf(runner, plan, inputs, n, scanned, ranges)
    const selectors = plan.models.map((m, i): Selector => {
      if (m.selector.kind !== "ranks") return m.selector
      const [lo, hi] = [m.selector.lo, m.selector.hi].map((r) => (r <= 0 ? Select.START : r >= n ? Select.END : cuts.get(`${i}:${r}`)!))
      return { kind: "window", lo: lo!, hi: hi! }
    })
    const l1 = plan.rescale !== "l1"
      ? plan.models.map(() => [])
      : yield* Effect.forEach(plan.models, (_, i) => runner.run("packedL1", { inputs, model: i, selector: selectors[i]! }, ranges))
    return TaskStatistics.finish(plan, selectors, (i) => l1[i]!)
  })

// The cuts of every ranked model, keyed `model:rank`: the passes of `Parallel.cuts`, with one
// low-histogram pass for all models (the base is decoded once).
const cutsOf = (runner: Runner, plan: TaskArithmeticPlan, inputs: ReadonlyArray<PackedInput>, n: number, scanned: Scanned, ranges: ReadonlyArray<Range>) =>
  Effect.gen(function* () {
    const located = scanned.ranked.map((model, c) => ({
      model,
      c,
      ranks: cutRanks(plan, model, n).map((rank) => ({ rank, ...Select.locate(scanned.high[c]!, rank) }))
    })).filter((l) => l.ranks.length > 0)
    const found = new Map<string, Select.Cut>()
    if (located.length === 0) return found
    // The low histograms of a bucket: from the scan where it guessed that bucket, else from one low pass for the rest.
    const guessed = (l: (typeof located)[number], bucket: number): GuessedLows | undefined => {
      const g = scanned.low?.[l.c]
      return g === undefined || bucket < g.first || bucket >= g.first + g.span ? undefined : g
    }
    const missing = located.filter((l) => l.ranks.some((r) => guessed(l, r.bucket) === undefined))
    const requests = missing.map((l) => ({ model: l.model, highs: l.ranks.map((r) => r.bucket) }))
    const lows = requests.length === 0 ? [] : yield* runner.run("packedCountLow", { inputs, requests }, ranges)
    for (const l of located) {
      const q = missing.indexOf(l)
      for (const [c, h] of l.ranks.entries()) {
        const g = guessed(l, h.bucket)
        const fromScan = q < 0 && g !== undefined
        const counts = fromScan ? guessedLow(g.perRange, h.bucket - g.first) : sum(lows.map((r) => r[q]![c]!), Select.LOW_BUCKETS)
        const low = Select.locate(counts, h.rank - h.above)
        const inRange = (r: number): number => (fromScan ? guessedCount(g.perRange[r]!, h.bucket - g.first, low.bucket) : lows[r]![q]![c]![low.bucket]!)
        const bits = ((h.bucket << 16) | low.bucket) >>> 0
        let nth = h.rank - h.above - low.above
        if (nth === 0) {
          found.set(`${l.model}:${h.rank}`, { bits, index: 0 })
          continue
        }
        let r = 0
        while (nth >= inRange(r)) nth -= inRange(r++)
        const [index] = yield* runner.run("packedNthEqual", { inputs, model: l.model, bits, nth }, [ranges[r]!])
        found.set(`${l.model}:${h.rank}`, { bits, index: index! })
      }
    }
    return found
  })

/**
 * The merge of `[start, end)` into `out` (element 0 is tensor index `start`) and, with `bf16`
 * (shared memory), encoded as bfloat16 into it by the workers, split across the runner; returns the
 * range's diagnostics partials in order (none on the weighted-sum path) and whether a merged value
 * is NaN or ±Inf (checked by the workers, so the caller scans `out` only when one is).
 *
 * @category kernels
 */
export const apply: (
  runner: Runner,
  prepared: Prepared,
  inputs: ReadonlyArray<PackedInput>,
  out: Float32Array,
  start: number,
  end: number,
  bf16?: Uint8Array
) => Effect.Effect<Applied, PoolError> =
  Effect.fn("PackedParallel.apply")(function* (runner, prepared, inputs, out, start, end, bf16) {
    const ranges = yield* runner.run("packedTaskArithmetic", { prepared, inputs, out, outStart: start, bf16 }, runner.split(start, end))
    return {
      parts: ranges.flatMap((r) => (r.diagnostics === undefined ? [] : [r.diagnostics])),
      nonFinite: ranges.some((r) => r.nonFinite)
    }
  })

/** What {@link apply} gives for one range of the tensor. @category models */
export interface Applied {
  /** The diagnostics partials, in range order (none on the weighted-sum path). */
  readonly parts: Array<TaskDiagnostics.Partial>
  /** Whether a merged value is NaN or ±Inf. */
  readonly nonFinite: boolean
}

const sum = (parts: ReadonlyArray<Uint32Array>, size: number): Uint32Array => {
  const total = new Uint32Array(size)
  for (const p of parts) for (let b = 0; b < size; b++) total[b] = total[b]! + p[b]!
  return total
}
