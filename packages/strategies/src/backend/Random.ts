/**
 * Seeded random numbers computed on the host, the one source of randomness for initialisation,
 * shuffling and augmentation. They never come from TF.js, so a seed gives the same numbers on
 * every backend and every machine.
 *
 * The generator is xoshiro128** (Blackman & Vigna), seeded through splitmix32. Streams are
 * derived from a seed and labels with {@link derive} (e.g. `derive(seed, "shuffle", epoch)`), so
 * each consumer's numbers do not depend on how many numbers another consumer drew: epoch 3's
 * order is the same whether or not epochs 1–2 ran in this process, which is what makes a resumed
 * training run equal an uninterrupted one.
 *
 * @since 0.1.0
 */

/** A stream of seeded random numbers. @category models */
export interface Random {
  /** A uniform 32-bit unsigned integer. */
  readonly uint32: () => number
  /** A uniform float in `[0, 1)` with 53 random bits. */
  readonly next: () => number
  /** A uniform float in `[low, high)`. */
  readonly uniform: (low: number, high: number) => number
  /** A uniform integer in `[0, n)` (unbiased, by rejection). */
  readonly int: (n: number) => number
  /** A standard normal sample (Box–Muller). */
  readonly normal: () => number
  /** A uniformly random permutation of `0 … n−1` (Fisher–Yates). */
  readonly permutation: (n: number) => Int32Array<ArrayBuffer>
}

const splitmix32 = (state: number): { readonly value: number; readonly state: number } => {
  const next = (state + 0x9e3779b9) | 0
  let z = next
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  return { value: (z ^ (z >>> 16)) >>> 0, state: next }
}

const mixString = (hash: number, text: string): number => {
  let h = hash
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
  return h >>> 0
}

/**
 * A seed for the stream named by `labels` under `seed`: equal inputs give equal seeds, and
 * different labels give unrelated streams.
 */
export const derive = (seed: number, ...labels: ReadonlyArray<string | number>): number => {
  let h = mixString(0x811c9dc5, `${seed}`)
  for (const label of labels) h = splitmix32(mixString(h ^ 0x2f, `${typeof label}:${label}`)).value
  return h
}

/** A stream seeded by `seed` (any finite number; integers are the usual choice). */
export const make = (seed: number): Random => {
  let sm = mixString(0x811c9dc5, `${seed}`)
  const words = new Uint32Array(4)
  for (let i = 0; i < 4; i++) {
    const r = splitmix32(sm)
    words[i] = r.value
    sm = r.state
  }
  if (words[0]! === 0 && words[1]! === 0 && words[2]! === 0 && words[3]! === 0) words[0] = 1
  let s0 = words[0]!
  let s1 = words[1]!
  let s2 = words[2]!
  let s3 = words[3]!
  const uint32 = (): number => {
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0
    const t = s1 << 9
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = rotl(s3, 11)
    return result
  }
  const next = (): number => ((uint32() >>> 5) * 67108864 + (uint32() >>> 6)) / 9007199254740992
  const int = (n: number): number => {
    if (!Number.isInteger(n) || n <= 0 || n > 0x100000000) throw new RangeError(`Random.int: n must be an integer in [1, 2^32], got ${n}`)
    const limit = 0x100000000 - (0x100000000 % n)
    for (;;) {
      const r = uint32()
      if (r < limit) return r % n
    }
  }
  let spare: number | undefined
  const normal = (): number => {
    if (spare !== undefined) {
      const value = spare
      spare = undefined
      return value
    }
    let u = 0
    while (u === 0) u = next()
    const v = next()
    const radius = Math.sqrt(-2 * Math.log(u))
    spare = radius * Math.sin(2 * Math.PI * v)
    return radius * Math.cos(2 * Math.PI * v)
  }
  const permutation = (n: number): Int32Array<ArrayBuffer> => {
    const out = new Int32Array(n)
    for (let i = 0; i < n; i++) out[i] = i
    for (let i = n - 1; i > 0; i--) {
      const j = int(i + 1)
      const tmp = out[i]!
      out[i] = out[j]!
      out[j] = tmp
    }
    return out
  }
  return { uint32, next, uniform: (low, high) => low + (high - low) * next(), int, normal, permutation }
}

const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k))
