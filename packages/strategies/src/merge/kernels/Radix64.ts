/**
 * Exact order statistics of float64 values — the value at a rank of the ascending order, as
 * `Float64Array.prototype.sort` orders them (−0 before +0, NaN last) — without sorting or holding
 * the values: four counting passes, one per 16-bit digit of an order-preserving 64-bit key, each
 * split over element ranges whose histograms are added (integers, so exact for any split). A
 * pass needs only the values of its range, so a kernel recomputes them from its inputs chunk by
 * chunk ({@link scratch}) instead of keeping a float64 copy of the tensor (SCE's variances, Arcee
 * Fusion's importances). The first pass also counts nonzero and NaN values.
 *
 * Keys: a non-negative double's bits with the sign bit set, a negative double's bits inverted,
 * every NaN all ones (little-endian words, as on every platform Node runs on).
 *
 * @since 0.1.0
 */
import type { Pass, Passes } from "./Passes.ts"
import type { Range } from "./Pool.ts"

/** Buckets of one digit. @category constants */
export const BUCKETS = 65536
/** Values recomputed at a time by a counting pass. @category constants */
export const CHUNK = 1024

/** The key bits fixed by earlier passes (the top 16·digit bits of `hi`, `lo`). @category models */
export interface Target {
  readonly hi: number
  readonly lo: number
}

/** The arguments of a counting pass (besides the kernel's own). @category models */
export interface CountArgs {
  readonly digit: number
  readonly targets: ReadonlyArray<Target>
}

/** A counting pass's result for one range: one histogram per target; nonzero and NaN counts on digit 0. @category models */
export interface Counts {
  readonly counts: ReadonlyArray<Uint32Array>
  nonzero: number
  nan: number
}

/** The value at one rank. @category models */
export interface Found {
  readonly rank: number
  readonly value: number
  /** Values strictly below it in the order (NaN counts as the largest). */
  readonly below: number
  /** Per range of the passes, the values with its key (for a number, those `=== value`). */
  readonly equal: ReadonlyArray<number>
}

/** A chunk of values with a view of their words. @category models */
export interface Scratch {
  readonly values: Float64Array
  readonly words: Uint32Array
}

/** @category constructors */
export const scratch = (): Scratch => {
  const values = new Float64Array(CHUNK)
  return { values, words: new Uint32Array(values.buffer) }
}

/** @category constructors */
export const emptyCounts = (targets: number): Counts => ({ counts: Array.from({ length: targets }, () => new Uint32Array(BUCKETS)), nonzero: 0, nan: 0 })

/** Adds the keys of `chunk.values[0, m)` to the histograms of `digit`. @category statistics */
export const count = (chunk: Scratch, m: number, { digit, targets }: CountArgs, into: Counts): void => {
  const { values, words } = chunk
  for (let k = 0; k < m; k++) {
    const v = values[k]!
    let hi = words[2 * k + 1]!, lo = words[2 * k]!
    if (v !== v) hi = lo = 0xffffffff
    else if (hi >= 0x80000000) (hi = ~hi >>> 0), (lo = ~lo >>> 0)
    else hi = (hi | 0x80000000) >>> 0
    if (digit === 0) {
      if (v !== 0) into.nonzero++
      if (v !== v) into.nan++
    }
    for (let t = 0; t < targets.length; t++) {
      const target = targets[t]!
      const c = into.counts[t]!
      if (digit === 0) c[hi >>> 16]!++
      else if (digit === 1) {
        if (hi >>> 16 === target.hi >>> 16) c[hi & 0xffff]!++
      } else if (hi === target.hi) {
        if (digit === 2) c[lo >>> 16]!++
        else if (lo >>> 16 === target.lo >>> 16) c[lo & 0xffff]!++
      }
    }
  }
}

/** The double whose key is (hi, lo). */
const valueOf = (hi: number, lo: number): number => {
  const words = new Uint32Array(2)
  if (hi >= 0x80000000) (words[1] = hi ^ 0x80000000), (words[0] = lo)
  else (words[1] = ~hi), (words[0] = ~lo)
  return new Float64Array(words.buffer)[0]!
}

/**
 * The values at `ranks(nonzero, nan)` (0-based positions of the ascending order of `n` values)
 * by four counting passes on `ranges`; `countArgs` makes a kernel's pass arguments. Ranks outside
 * `[0, n)` are dropped.
 *
 * @category statistics
 */
export function* select<Args>(
  ranges: ReadonlyArray<Range>,
  n: number,
  countArgs: (c: CountArgs) => Args,
  ranks: (first: { readonly nonzero: number; readonly nan: number }) => ReadonlyArray<number>
): Passes<Args, { readonly nonzero: number; readonly nan: number; readonly found: ReadonlyArray<Found> }> {
  const pass = (c: CountArgs): Pass<Args> => ({ args: countArgs(c), ranges })
  const first = (yield pass({ digit: 0, targets: [{ hi: 0, lo: 0 }] })) as ReadonlyArray<Counts>
  const nonzero = first.reduce((t, c) => t + c.nonzero, 0)
  const nan = first.reduce((t, c) => t + c.nan, 0)
  const wanted = ranks({ nonzero, nan }).filter((r) => r >= 0 && r < n)
  const states = wanted.map((rank) => ({ rank, rest: rank, below: 0, hi: 0, lo: 0, equal: [] as Array<number> }))
  if (states.length === 0) return { nonzero, nan, found: [] }
  let results: ReadonlyArray<Counts> = first
  for (let digit = 0; digit < 4; digit++) {
    if (digit > 0) results = (yield pass({ digit, targets: states.map(({ hi, lo }) => ({ hi, lo })) })) as ReadonlyArray<Counts>
    for (const [s, state] of states.entries()) {
      const perRange = results.map((r) => r.counts[digit === 0 ? 0 : s]!)
      let bucket = 0, before = 0
      for (;; bucket++) {
        let inBucket = 0
        for (const h of perRange) inBucket += h[bucket]!
        if (state.rest < before + inBucket) break
        before += inBucket
      }
      state.rest -= before
      state.below += before
      if (digit === 0) state.hi = (bucket << 16) >>> 0
      else if (digit === 1) state.hi = (state.hi | bucket) >>> 0
      else if (digit === 2) state.lo = (bucket << 16) >>> 0
      else {
        state.lo = (state.lo | bucket) >>> 0
        state.equal = perRange.map((h) => h[bucket]!)
      }
    }
  }
  return { nonzero, nan, found: states.map((s) => ({ rank: s.rank, value: valueOf(s.hi, s.lo), below: s.below, equal: s.equal })) }
}
