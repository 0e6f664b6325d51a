/**
 * Which entries of a task vector τ = θ − base survive, and by how much survivors are rescaled:
 * the `sparsify` step of the generalized task-arithmetic merge.
 *
 * - `magnitude` (TIES): keep the k = ⌊density·n⌋ largest |τ|.
 * - `random` (DARE): keep each entry with probability density (drop rate p = 1 − density).
 * - `breadcrumbs`: drop the ⌊γ·n⌋ largest and then the smallest, so ⌊density·n⌋ remain.
 * - `della` (MagPrune): within each row, keep with probability
 *   `pⱼ = density − ε + 2ε·rankⱼ/(L−1)` (rank 0 = smallest |τ| of the row's L entries).
 *
 * Rescaling: `unbiased` divides survivors by their keep probability (1/(1−p) for DARE, 1/pⱼ for
 * DELLA, as the papers do), `l1` multiplies by ‖τ‖₁/‖kept τ‖₁ (mergekit's `rescale`). A
 * {@link Selector} is plain data, so it can be sent to a worker.
 *
 * @since 0.1.0
 */
import * as Prng from "./Prng.ts"
import { type Cut, isAbove } from "./Select.ts"

/** @category params */
export type SparsifyMethod = "none" | "magnitude" | "random" | "breadcrumbs" | "della"
/** @category params */
export type Rescale = "none" | "unbiased" | "l1"

/** The per-element decision, after statistics. @category models */
export type Selector =
  | { readonly kind: "all" }
  | { readonly kind: "none" }
  /** Ranks in [lo, hi) by descending magnitude survive. */
  | { readonly kind: "window"; readonly lo: Cut; readonly hi: Cut }
  | { readonly kind: "random"; readonly key: Prng.StreamKey; readonly density: number }
  | { readonly kind: "della"; readonly key: Prng.StreamKey; readonly density: number; readonly epsilon: number; readonly rowLength: number }

/** Rank windows [lo, hi) (by descending magnitude) that the deterministic methods keep, for n elements. @category selection */
export const rankWindow = (method: "magnitude" | "breadcrumbs", n: number, density: number, gamma: number): { readonly lo: number; readonly hi: number } => {
  const target = Math.floor(density * n)
  if (method === "magnitude") return { lo: 0, hi: target }
  let top = Math.floor(gamma * n)
  const bottom = n - target - top
  if (bottom < 0) top += bottom
  return { lo: top, hi: top + target }
}

/** Scratch of {@link dellaRow}, reused across rows. @category kernels */
export interface RowScratch {
  tau: Float32Array
  keys: Uint32Array
  keysB: Uint32Array
  order: Uint32Array
  orderB: Uint32Array
  readonly counts: Uint32Array
}

/** Empty row scratch (it grows to the longest row). @category kernels */
export const rowScratch = (): RowScratch => ({
  tau: new Float32Array(0),
  keys: new Uint32Array(0),
  keysB: new Uint32Array(0),
  order: new Uint32Array(0),
  orderB: new Uint32Array(0),
  counts: new Uint32Array(RADIX)
})

const RADIX_BITS = 11
const RADIX = 1 << RADIX_BITS

/**
 * DELLA's keep probabilities for the row `[rowStart, rowStart + L)` of the arrays, into `p`
 * (length ≥ L). Ranks are ascending |τ|, ties ranked like {@link isAbove} (lower index = larger).
 * The ranks come from a stable LSD radix sort of the 31-bit magnitude keys (3 passes of 11 bits)
 * over the row visited from its last element to its first, so equal keys end up in descending
 * index order: linear in L, unlike a comparison sort.
 *
 * @category selection
 */
export const dellaRow = (
  x: Float32Array,
  base: Float32Array,
  rowStart: number,
  length: number,
  density: number,
  epsilon: number,
  p: Float64Array,
  scratch: RowScratch
): void => {
  if (length === 1) {
    p[0] = dellaProbability(density, epsilon, 1, 0)
    return
  }
  if (scratch.tau.length < length) {
    scratch.tau = new Float32Array(length)
    scratch.keys = new Uint32Array(length)
    scratch.keysB = new Uint32Array(length)
    scratch.order = new Uint32Array(length)
    scratch.orderB = new Uint32Array(length)
  }
  const { tau, counts } = scratch
  const bits = new Uint32Array(tau.buffer, 0, length)
  for (let k = 0; k < length; k++) tau[k] = x[rowStart + k]! - base[rowStart + k]!
  let keys = scratch.keys, keysB = scratch.keysB, order = scratch.order, orderB = scratch.orderB
  for (let k = 0; k < length; k++) {
    const from = length - 1 - k
    keys[k] = bits[from]! & 0x7fffffff
    order[k] = from
  }
  for (let shift = 0; shift < 31; shift += RADIX_BITS) {
    counts.fill(0)
    for (let k = 0; k < length; k++) counts[(keys[k]! >>> shift) & (RADIX - 1)]!++
    let sum = 0
    for (let d = 0; d < RADIX; d++) {
      const c = counts[d]!
      counts[d] = sum
      sum += c
    }
    for (let k = 0; k < length; k++) {
      const digit = (keys[k]! >>> shift) & (RADIX - 1)
      const at = counts[digit]!++
      keysB[at] = keys[k]!
      orderB[at] = order[k]!
    }
    ;[keys, keysB] = [keysB, keys]
    ;[order, orderB] = [orderB, order]
  }
  for (let rank = 0; rank < length; rank++) p[order[rank]!] = dellaProbability(density, epsilon, length, rank)
}

/**
 * DELLA's keep probability of rank `rank` (0 = smallest magnitude) in a row of `length`:
 * density − ε + rank·2ε/(L − 1) in float64, density for a row of one. {@link dellaRow} and the GPU
 * kernel's tables (`gpu/Della.ts`) both take it from here, so their kept sets agree bit for bit.
 *
 * @category selection
 */
export const dellaProbability = (density: number, epsilon: number, length: number, rank: number): number =>
  length === 1 ? density : density - epsilon + rank * ((2 * epsilon) / (length - 1))

/**
 * Applies one model's selector to the chunk `[j0, j0 + m)` of the arrays: writes
 * `v[k] = weight·scale·τⱼ·(rescale factor)` for survivors and 0 for dropped entries. `offset` is
 * the tensor index of array element 0 (PRNG counters, cut indices and rows use tensor indices).
 * Returns Σ τⱼ² over the chunk (float32 τ, float64 sum) and, for the random selectors, leaves
 * the count of survivors in `work.kept`: the merge's diagnostics, taken in loops that run anyway.
 *
 * @category kernels
 */
export const applyChunk = (
  selector: Selector,
  unbiased: boolean,
  factor: number,
  x: Float32Array,
  base: Float32Array,
  j0: number,
  m: number,
  offset: number,
  v: Float64Array,
  work: ChunkWork
): number => {
  const tau = work.tau
  // Two sums, so that the squares do not make one chain of dependent additions.
  let s0 = 0
  let s1 = 0
  let j = 0
  for (; j + 1 < m; j += 2) {
    const a = Math.fround(x[j0 + j]! - base[j0 + j]!)
    const b = Math.fround(x[j0 + j + 1]! - base[j0 + j + 1]!)
    tau[j] = a
    tau[j + 1] = b
    s0 += a * a
    s1 += b * b
  }
  if (j < m) {
    const a = Math.fround(x[j0 + j]! - base[j0 + j]!)
    tau[j] = a
    s0 += a * a
  }
  const squares = s0 + s1
  switch (selector.kind) {
    case "all":
      for (let k = 0; k < m; k++) v[k] = factor * tau[k]!
      return squares
    case "none":
      v.fill(0, 0, m)
      return squares
    case "window": {
      // Comparisons are turned into 0/1 factors rather than branches: whether an entry survives
      // is close to a coin flip, and mispredicted branches cost more than the multiply.
      const keys = work.keys
      const { lo, hi } = selector
      const at0 = offset + j0
      const hb = hi.bits
      const lb = lo.bits
      if (hi.index === 0 && lo.index === 0) {
        // No cut inside a group of equal magnitudes: the bits alone decide.
        for (let k = 0; k < m; k++) {
          const key = keys[k]! & 0x7fffffff
          v[k] = factor * tau[k]! * +(key > hb) * +(key <= lb)
        }
        return squares
      }
      for (let k = 0; k < m; k++) {
        const key = keys[k]! & 0x7fffffff
        const at = at0 + k
        v[k] = isAbove(key, at, hi) && !isAbove(key, at, lo) ? factor * tau[k]! : 0
      }
      return squares
    }
    case "random": {
      const u = work.uniform
      Prng.fillUniform(selector.key, offset + j0, u, m)
      const d = selector.density
      const kept = unbiased ? factor / d : factor
      let survivors = 0
      for (let k = 0; k < m; k++) {
        const keep = +(u[k]! < d)
        v[k] = kept * tau[k]! * keep
        survivors += keep
      }
      work.kept = survivors
      return squares
    }
    case "della": {
      const u = work.uniform
      Prng.fillUniform(selector.key, offset + j0, u, m)
      const L = selector.rowLength
      let survivors = 0
      for (let k = 0; k < m; k++) {
        const at = offset + j0 + k
        const row = Math.floor(at / L)
        if (row !== work.row) {
          const rowStart = row * L - offset
          if (rowStart < 0 || rowStart + L > x.length) throw new RangeError(`DELLA needs whole rows: row ${row} is not inside the arrays`)
          dellaRow(x, base, rowStart, L, selector.density, selector.epsilon, work.rowP(L), work.rowScratch)
          work.row = row
        }
        const p = work.p[at - work.row * L]!
        if (u[k]! < p) {
          v[k] = (unbiased ? factor / p : factor) * tau[k]!
          survivors++
        } else {
          v[k] = 0
        }
      }
      work.kept = survivors
      return squares
    }
  }
}

/** Scratch of {@link applyChunk} for one model: reused across chunks, so rows are ranked once. @category kernels */
export class ChunkWork {
  readonly tau: Float32Array
  readonly keys: Uint32Array
  readonly uniform: Float64Array
  row = -1
  p = new Float64Array(0)
  /** Survivors of the last chunk, for the random selectors (`random`, `della`). */
  kept = 0
  readonly rowScratch = rowScratch()
  constructor(chunk: number) {
    this.tau = new Float32Array(chunk)
    this.keys = new Uint32Array(this.tau.buffer)
    this.uniform = new Float64Array(chunk)
  }
  rowP(length: number): Float64Array {
    if (this.p.length < length) this.p = new Float64Array(length)
    return this.p
  }
}
