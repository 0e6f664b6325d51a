/**
 * Test helpers: seeded data (mulberry32, independent of the kernels' PRNG), float64 reference
 * utilities and ulp-based comparison of float32 outputs.
 */
import { expect } from "vitest"
import type * as Arena from "../../../src/merge/kernels/Arena.ts"

/** mulberry32: a tiny seeded generator for test data. */
export const rng = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** n standard normal float32 values (Box–Muller), scaled. */
export const normal = (seed: number, n: number, scale = 1, shift = 0): Float32Array => {
  const r = rng(seed)
  const out = new Float32Array(n)
  for (let j = 0; j < n; j++) {
    const u = Math.max(r(), 1e-12)
    out[j] = shift + scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r())
  }
  return out
}

/** A base and `count` fine-tunes: base + small task vectors. */
export const family = (seed: number, n: number, count: number, spread = 0.05): { base: Float32Array; models: Array<Float32Array> } => {
  const base = normal(seed, n)
  const models = Array.from({ length: count }, (_, i) => {
    const delta = normal(seed * 31 + i + 1, n, spread)
    return Float32Array.from(base, (b, j) => b + delta[j]!)
  })
  return { base, models }
}

/** The float32 spacing at |x|. */
export const ulp = (x: number): number => {
  const a = Math.abs(Math.fround(x))
  if (a === 0 || a < 2 ** -126) return 2 ** -149
  return 2 ** (Math.floor(Math.log2(a)) - 23)
}

/** Every element within `ulps` float32 ulps of the float64 reference (plus an absolute floor). */
export const expectClose = (actual: ArrayLike<number>, expected: ArrayLike<number>, ulps = 1, floor = 0): void => {
  expect(actual.length).toBe(expected.length)
  let worst = 0
  let at = -1
  for (let j = 0; j < expected.length; j++) {
    const e = expected[j]!
    const a = actual[j]!
    const err = Math.abs(a - e) / (ulps * ulp(e) + floor)
    if (!(err <= worst)) {
      worst = err
      at = j
    }
  }
  if (!(worst <= 1)) {
    expect.fail(`element ${at}: got ${actual[at]}, expected ${expected[at]} (${worst.toFixed(2)}× the tolerance of ${ulps} ulp + ${floor})`)
  }
}

/** Bitwise equality of two float32 arrays (NaN payloads included), with the first difference reported. */
export const expectSameBits = (a: Float32Array, b: Float32Array): void => {
  expect(a.length).toBe(b.length)
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length)
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length)
  for (let j = 0; j < ua.length; j++) if (ua[j] !== ub[j]) expect.fail(`element ${j} differs: ${a[j]} vs ${b[j]}`)
}

/** A copy of `x` in a SharedArrayBuffer. */
export const shared = (x: Float32Array): Float32Array => {
  const s = new Float32Array(new SharedArrayBuffer(x.byteLength))
  s.set(x)
  return s
}

/** Copies into `arena` (where a pool's workers can read them): `x` ↦ a copy of `x` allocated there. */
export const copierInto = (arena: Arena.Arena) => (x: Float32Array) => {
  const a = arena.alloc(x.length)!
  a.set(x)
  return a
}
