/**
 * Float64 sums that split exactly across threads: each block of `Gram.BLOCK` elements (aligned to
 * multiples of the block from index 0) is summed on its own, left to right, and the block sums
 * are added in block order. A range that starts on a block boundary yields its blocks' partials;
 * {@link combine} adds the partials of consecutive ranges, so any split on block boundaries (one
 * range, or one per worker) gives the same bits.
 *
 * @since 0.1.0
 */
import { BLOCK } from "./Gram.ts"

/**
 * Per-block sums of `width` quantities over `[start, end)`: `sumBlock(b0, b1, sums)` adds the
 * block `[b0, b1)` into `sums` (its `width` slots, zero at the start). Block q occupies
 * `out[q·width … (q+1)·width)`.
 *
 * @category statistics
 */
export const partials = (
  start: number,
  end: number,
  width: number,
  sumBlock: (b0: number, b1: number, sums: Float64Array) => void,
  block = BLOCK
): Float64Array => {
  const blocks = Math.max(0, Math.ceil((end - start) / block))
  const out = new Float64Array(blocks * width)
  for (let q = 0; q < blocks; q++) {
    const b0 = start + q * block
    sumBlock(b0, Math.min(end, b0 + block), out.subarray(q * width, (q + 1) * width))
  }
  return out
}

/** The per-range partials of consecutive ranges, one after the other (range order). @category statistics */
export const concat = (parts: ReadonlyArray<Float64Array>): Float64Array => {
  const out = new Float64Array(parts.reduce((t, p) => t + p.length, 0))
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0)
  return out
}

/** Adds per-block partials (from consecutive ranges, in range order) block by block: `width` totals. @category statistics */
export const combine = (parts: ReadonlyArray<unknown>, width: number): Float64Array => {
  const total = new Float64Array(width)
  for (const p of parts as ReadonlyArray<Float64Array>) {
    for (let q = 0; q < p.length; q += width) for (let i = 0; i < width; i++) total[i] = total[i]! + p[q + i]!
  }
  return total
}
