/**
 * Ranking task-vector entries by magnitude without sorting: the element at a given rank is found
 * by a two-level radix select on the float32 bits of |τ| (τ = float32(x − base)), so top-k costs
 * two counting passes over the inputs and no allocation proportional to the tensor.
 *
 * Order: larger |τ| first; equal magnitudes (bit-equal, so −0 = +0) are ordered by index, lower
 * index first. A {@link Cut} marks the element at rank r; `isAbove(key, index, cut)` says whether
 * an element ranks strictly before it, so "keep the top k" is `isAbove(…, cut(k))` and any rank
 * window [lo, hi) is two cuts. Each pass works on a range and its counts add up exactly, so a
 * pool can split the passes and get the same cut. The third pass (finding the index among equal
 * magnitudes) runs only when the cut falls inside a group of exact ties; otherwise no equal
 * element ranks above the cut and its index is recorded as 0.
 *
 * @since 0.1.0
 */

/** The element at some rank: its magnitude bits and its tensor index. @category models */
export interface Cut {
  /** |τ| as float32 bits; −1 when the rank is past the end (everything ranks above). */
  readonly bits: number
  /** Tensor index of the element; elements with the same bits and a lower index rank above. */
  readonly index: number
}

/** The cut at rank ≥ n: every element ranks above it. @category constants */
export const END: Cut = { bits: -1, index: 0 }
/** The cut at rank 0: no element ranks above it. @category constants */
export const START: Cut = { bits: 2 ** 32, index: 0 }

/** Buckets of the first pass (the 15 high bits of |τ|; the sign bit is 0). */
export const HIGH_BUCKETS = 32768
/** Buckets of the second pass (the 16 low bits). */
export const LOW_BUCKETS = 65536

const CHUNK = 2048

/** Whether the element with magnitude bits `key` at tensor index `index` ranks before `cut`. @category predicates */
export const isAbove = (key: number, index: number, cut: Cut): boolean => key > cut.bits || (key === cut.bits && index < cut.index)

/**
 * Calls `visit(bits, count, first)` with the float32 bits of τ = float32(x − base) for
 * `[start, end)`, a chunk at a time (`first` is the array index of `bits[0]`); the magnitude key
 * is `bits & 0x7fffffff`.
 *
 * @category passes
 */
export const forEachKeyChunk = (
  x: Float32Array,
  base: Float32Array,
  start: number,
  end: number,
  visit: (keys: Uint32Array, count: number, first: number) => void
): void => {
  const tau = new Float32Array(CHUNK)
  const keys = new Uint32Array(tau.buffer)
  for (let j0 = start; j0 < end; j0 += CHUNK) {
    const m = Math.min(CHUNK, end - j0)
    for (let k = 0; k < m; k++) tau[k] = x[j0 + k]! - base[j0 + k]!
    visit(keys, m, j0)
  }
}

/** Pass 1: adds the counts of the high 15 bits of |τ| on `[start, end)` into `counts` (32768 buckets). @category passes */
export const countHigh = (x: Float32Array, base: Float32Array, start: number, end: number, counts: Uint32Array): void =>
  forEachKeyChunk(x, base, start, end, (keys, m) => {
    for (let k = 0; k < m; k++) counts[(keys[k]! >>> 16) & 0x7fff]!++
  })

/**
 * Pass 2: for each wanted high bucket `highs[c]`, adds the counts of the low 16 bits of the
 * elements in that bucket into `counts[c]` (65536 buckets each).
 *
 * @category passes
 */
export const countLow = (
  x: Float32Array,
  base: Float32Array,
  start: number,
  end: number,
  highs: ReadonlyArray<number>,
  counts: ReadonlyArray<Uint32Array>
): void =>
  forEachKeyChunk(x, base, start, end, (keys, m) => {
    if (highs.length === 1) {
      const h = highs[0]!
      const c0 = counts[0]!
      for (let k = 0; k < m; k++) {
        const key = keys[k]!
        if (((key >>> 16) & 0x7fff) === h) c0[key & 0xffff]!++
      }
      return
    }
    for (let k = 0; k < m; k++) {
      const key = keys[k]! & 0x7fffffff
      const high = key >>> 16
      for (let c = 0; c < highs.length; c++) if (high === highs[c]) counts[c]![key & 0xffff]!++
    }
  })

/** Where rank `rank` falls in a descending histogram: the bucket and how many elements rank above it. @category passes */
export const locate = (counts: Uint32Array, rank: number): { readonly bucket: number; readonly above: number } => {
  let above = 0
  for (let bucket = counts.length - 1; bucket >= 0; bucket--) {
    const c = counts[bucket]!
    if (rank < above + c) return { bucket, above }
    above += c
  }
  return { bucket: -1, above }
}

/** Pass 3: the array index of the `nth` (0-based) element on `[start, end)` whose magnitude bits equal `bits`; −1 if none. @category passes */
export const nthEqual = (x: Float32Array, base: Float32Array, start: number, end: number, bits: number, nth: number): number => {
  let seen = 0
  let found = -1
  forEachKeyChunk(x, base, start, end, (keys, m, first) => {
    if (found >= 0) return
    for (let k = 0; k < m; k++) {
      if ((keys[k]! & 0x7fffffff) === bits) {
        if (seen === nth) {
          found = first + k
          return
        }
        seen++
      }
    }
  })
  return found
}

/**
 * The cuts at the given ranks of `|float32(x − base)|` over the whole arrays, single-threaded
 * (a pool runs the same three passes on ranges). `offset` is the tensor index of element 0.
 *
 * @category selection
 */
export const cuts = (x: Float32Array, base: Float32Array, ranks: ReadonlyArray<number>, offset = 0): Array<Cut> => {
  const n = x.length
  const high = new Uint32Array(HIGH_BUCKETS)
  const inside = ranks.filter((r) => r > 0 && r < n)
  if (inside.length > 0) countHigh(x, base, 0, n, high)
  const located = inside.map((r) => ({ rank: r, ...locate(high, r) }))
  const lows = located.map(() => new Uint32Array(LOW_BUCKETS))
  if (located.length > 0) countLow(x, base, 0, n, located.map((l) => l.bucket), lows)
  return ranks.map((r) => {
    if (r <= 0) return START
    if (r >= n) return END
    const l = located[inside.indexOf(r)]!
    const low = locate(lows[inside.indexOf(r)]!, r - l.above)
    const bits = ((l.bucket << 16) | low.bucket) >>> 0
    const nth = r - l.above - low.above
    return { bits, index: nth === 0 ? 0 : offset + nthEqual(x, base, 0, n, bits, nth) }
  })
}
