/**
 * A small seeded generator (SplitMix32), so permutation orders, test models and benchmarks are
 * reproducible bit for bit across runs and machines; `Math.random` is never used.
 *
 * @since 0.1.0
 */

/** A deterministic stream of pseudo-random numbers. @category models */
export interface Random {
  /** Uniform in [0, 1), 32 bits of entropy. */
  readonly next: () => number
  /** Uniform integer in [0, bound). */
  readonly int: (bound: number) => number
  /** Standard normal (Box–Muller). */
  readonly normal: () => number
}

/** A generator started from `seed` (any integer; only its low 32 bits matter). @category constructors */
export const make = (seed: number): Random => {
  let state = seed >>> 0
  const next = (): number => {
    state = (state + 0x9e3779b9) >>> 0
    let z = state
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296
  }
  let spare: number | undefined
  const normal = (): number => {
    if (spare !== undefined) {
      const value = spare
      spare = undefined
      return value
    }
    // 1 - next() lies in (0, 1], so the logarithm is finite.
    const radius = Math.sqrt(-2 * Math.log(1 - next()))
    const angle = 2 * Math.PI * next()
    spare = radius * Math.sin(angle)
    return radius * Math.cos(angle)
  }
  return { next, int: (bound) => Math.floor(next() * bound), normal }
}

/** A uniformly random permutation of `0..n-1` (Fisher–Yates). */
export const permutation = (random: Random, n: number): Int32Array<ArrayBuffer> => {
  const out = new Int32Array(n)
  for (let i = 0; i < n; i++) out[i] = i
  for (let i = n - 1; i > 0; i--) {
    const j = random.int(i + 1)
    const t = out[i]!
    out[i] = out[j]!
    out[j] = t
  }
  return out
}

/** `count` normal samples scaled by `scale`, as float32. */
export const normals = (random: Random, count: number, scale = 1): Float32Array<ArrayBuffer> => {
  const out = new Float32Array(count)
  for (let i = 0; i < count; i++) out[i] = random.normal() * scale
  return out
}
