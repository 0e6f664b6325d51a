/**
 * Counter-based random numbers for the stochastic merges (DARE, DELLA): the j-th draw of a stream
 * is a pure function of (key, j), so any element range can be computed on its own and a result
 * never depends on tensor order, chunking or how many workers split a tensor.
 *
 * A stream's key is two 32-bit words derived from (seed, tensor name, stream index) with FNV-1a
 * over the name's UTF-8 bytes, each word finalised with `lowbias32`. Draw j is
 * `lowbias32(lowbias32(k₀ + j·φ) ⊕ k₁)` with φ = 0x9E3779B9, the Weyl increment of splitmix32,
 * and lowbias32 the 32-bit finaliser of C. Wellons' hash-prospector (bias ≈ 0.17, a bijection).
 * For a fixed key the draws of j < 2³² are therefore distinct. A uniform in [0, 1) takes the top
 * 24 bits, so it is exact in float32 and `u < p` is a Bernoulli(p) trial up to 2⁻²⁴.
 *
 * @since 0.1.0
 */

/** A stream key: two 32-bit words. @category models */
export interface StreamKey {
  readonly k0: number
  readonly k1: number
}

const PHI = 0x9e3779b9 | 0
const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193
const TWO_POW_MINUS_24 = 1 / 16777216

/** Wellons' lowbias32 finaliser: a bijection of 32-bit words with strong avalanche. */
export const lowbias32 = (x: number): number => {
  x ^= x >>> 16
  x = Math.imul(x, 0x7feb352d)
  x ^= x >>> 15
  x = Math.imul(x, 0x846ca68b)
  x ^= x >>> 16
  return x >>> 0
}

const fnv1a = (bytes: Uint8Array, basis: number): number => {
  let h = basis
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, FNV_PRIME)
  return h >>> 0
}

const encoder = new TextEncoder()

/**
 * The key of the stream for (`seed`, `name`, `stream`): `seed` is any safe integer (both 32-bit
 * halves count), `stream` separates streams of one tensor (e.g. the model index).
 *
 * @category constructors
 */
export const key = (seed: number, name: string, stream = 0): StreamKey => {
  const lo = seed >>> 0
  const hi = Math.floor(seed / 4294967296) >>> 0
  const bytes = encoder.encode(name)
  const h0 = fnv1a(bytes, FNV_OFFSET)
  const h1 = fnv1a(bytes, lowbias32(FNV_OFFSET ^ 0x5bd1e995))
  const k0 = lowbias32(h0 ^ lowbias32(lo ^ lowbias32(stream + 0x632be5ab)))
  const k1 = lowbias32(h1 ^ lowbias32(hi + Math.imul(stream, PHI) + 0x1b873593))
  return { k0, k1 }
}

/** Draw `index` of a stream as an unsigned 32-bit word. @category draws */
export const bits = (k: StreamKey, index: number): number => lowbias32(lowbias32((k.k0 + Math.imul(index, PHI)) | 0) ^ k.k1)

/** Draw `index` of a stream as a uniform in [0, 1) with 24 bits. @category draws */
export const uniform = (k: StreamKey, index: number): number => (bits(k, index) >>> 8) * TWO_POW_MINUS_24

/**
 * Fills `out[i] = uniform(key, first + i)` — the batched form the kernels use, so the
 * per-element key lookups stay out of their inner loops.
 *
 * @category draws
 */
export const fillUniform = (k: StreamKey, first: number, out: Float64Array | Float32Array, count = out.length): void => {
  const { k0, k1 } = k
  let x = (k0 + Math.imul(first, PHI)) | 0
  for (let i = 0; i < count; i++) {
    let h = x
    h ^= h >>> 16
    h = Math.imul(h, 0x7feb352d)
    h ^= h >>> 15
    h = Math.imul(h, 0x846ca68b)
    h ^= h >>> 16
    h ^= k1
    h ^= h >>> 16
    h = Math.imul(h, 0x7feb352d)
    h ^= h >>> 15
    h = Math.imul(h, 0x846ca68b)
    h ^= h >>> 16
    out[i] = (h >>> 8) * TWO_POW_MINUS_24
    x = (x + PHI) | 0
  }
}
