/**
 * Gram matrices `Gᵢₖ = ⟨xᵢ − b, xₖ − b⟩` of a few vectors: the whole-tensor statistics of SLERP
 * (one dot product and two norms), multi-SLERP and model stock (pairwise cosines).
 *
 * The sums are float64 and reduced over fixed blocks: each block of `block` elements (aligned to
 * multiples of `block` from index 0) is summed on its own, and the blocks are added in order. A
 * worker pool that splits a tensor on block boundaries and {@link combine}s the per-block
 * partials in order therefore gets bit-identical statistics for any number of workers.
 *
 * @since 0.1.0
 */

/** Default reduction block, in elements. @category constants */
export const BLOCK = 65536

const CHUNK = 1024

/** Number of blocks of `block` elements covering `[start, end)` (start a multiple of `block`). */
export const blockCount = (start: number, end: number, block = BLOCK): number => Math.ceil((end - start) / block)

/**
 * Per-block Gram matrices over `[start, end)`: block `q` occupies `out[q·N² … (q+1)·N²)`, row-major
 * and symmetric. `base` is subtracted first when given (task vectors). `start` must be a multiple
 * of `block` for the partials to line up with other ranges' (any `end` is fine).
 *
 * @category statistics
 */
export const partials = (
  inputs: ReadonlyArray<Float32Array>,
  base: Float32Array | undefined,
  start: number,
  end: number,
  block = BLOCK
): Float64Array => {
  const n = inputs.length
  const blocks = blockCount(start, end, block)
  const out = new Float64Array(blocks * n * n)
  const scratch = new Float64Array(n * CHUNK)
  for (let q = 0; q < blocks; q++) {
    const b0 = start + q * block
    const b1 = Math.min(end, b0 + block)
    const g = out.subarray(q * n * n, (q + 1) * n * n)
    for (let j0 = b0; j0 < b1; j0 += CHUNK) {
      const m = Math.min(CHUNK, b1 - j0)
      load(inputs, base, j0, m, scratch)
      accumulate(scratch, n, m, g)
    }
    for (let i = 0; i < n; i++) for (let k = 0; k < i; k++) g[i * n + k] = g[k * n + i]!
  }
  return out
}

const load = (inputs: ReadonlyArray<Float32Array>, base: Float32Array | undefined, j0: number, m: number, scratch: Float64Array): void => {
  for (let i = 0; i < inputs.length; i++) {
    const x = inputs[i]!
    const o = i * CHUNK
    if (base === undefined) for (let k = 0; k < m; k++) scratch[o + k] = x[j0 + k]!
    else for (let k = 0; k < m; k++) scratch[o + k] = x[j0 + k]! - base[j0 + k]!
  }
}

// Upper triangle only; each chunk's dot product is summed locally, then added to the block sum.
const accumulate = (scratch: Float64Array, n: number, m: number, g: Float64Array): void => {
  for (let i = 0; i < n; i++) {
    const oi = i * CHUNK
    for (let k = i; k < n; k++) {
      const ok = k * CHUNK
      let s = 0
      for (let t = 0; t < m; t++) s += scratch[oi + t]! * scratch[ok + t]!
      g[i * n + k] = g[i * n + k]! + s
    }
  }
}

/**
 * Sums per-block partials (several arrays from consecutive ranges, in range order) into one
 * N×N matrix, block by block in order.
 *
 * @category statistics
 */
export const combine = (parts: ReadonlyArray<Float64Array>, n: number): Float64Array => {
  const g = new Float64Array(n * n)
  const size = n * n
  for (const p of parts) {
    for (let q = 0; q < p.length; q += size) for (let e = 0; e < size; e++) g[e] = g[e]! + p[q + e]!
  }
  return g
}

/** The Gram matrix of the whole arrays (`[0, length)`), single-threaded. @category statistics */
export const gram = (inputs: ReadonlyArray<Float32Array>, base?: Float32Array, block = BLOCK): Float64Array =>
  combine([partials(inputs, base, 0, inputs[0]?.length ?? 0, block)], inputs.length)
