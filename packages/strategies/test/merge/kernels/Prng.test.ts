import { describe, expect, it } from "vitest"
import * as Prng from "../../../src/merge/kernels/Prng.ts"

describe("counter-based PRNG", () => {
  it("lowbias32 matches Wellons' published outputs", () => {
    // Reference values from the C definition (hash-prospector, lowbias32).
    const c = (x: number) => {
      x = (x ^ (x >>> 16)) >>> 0
      x = Number((BigInt(x) * 0x7feb352dn) & 0xffffffffn)
      x = (x ^ (x >>> 15)) >>> 0
      x = Number((BigInt(x) * 0x846ca68bn) & 0xffffffffn)
      return (x ^ (x >>> 16)) >>> 0
    }
    for (const x of [0, 1, 2, 0xdeadbeef, 0xffffffff, 12345678]) expect(Prng.lowbias32(x)).toBe(c(x))
  })

  it("a draw depends only on (seed, name, stream, index)", () => {
    const k = Prng.key(42, "model.layers.3.mlp.up_proj.weight", 1)
    expect(Prng.key(42, "model.layers.3.mlp.up_proj.weight", 1)).toEqual(k)
    const batch = new Float64Array(1000)
    Prng.fillUniform(k, 5000, batch)
    for (let i = 0; i < 1000; i++) expect(batch[i]).toBe(Prng.uniform(k, 5000 + i))
    // Batches starting anywhere agree with each other.
    const shifted = new Float64Array(10)
    Prng.fillUniform(k, 5500, shifted)
    expect(Array.from(shifted)).toEqual(Array.from(batch.subarray(500, 510)))
  })

  it("different seeds, names, streams and seed high halves give different streams", () => {
    const first = (k: Prng.StreamKey) => Array.from({ length: 8 }, (_, i) => Prng.bits(k, i))
    const base = first(Prng.key(1, "a", 0))
    for (const other of [Prng.key(2, "a", 0), Prng.key(1, "b", 0), Prng.key(1, "a", 1), Prng.key(1 + 2 ** 32, "a", 0), Prng.key(1, "ä", 0)]) {
      expect(first(other)).not.toEqual(base)
    }
  })

  it("uniforms are uniform (chi-square over 64 bins) and uncorrelated across neighbours", () => {
    const k = Prng.key(7, "w")
    const n = 1 << 18
    const u = new Float64Array(n)
    Prng.fillUniform(k, 0, u)
    const bins = new Float64Array(64)
    let mean = 0
    let lag = 0
    let outside = 0
    for (let i = 0; i < n; i++) {
      if (!(u[i]! >= 0 && u[i]! < 1)) outside++
      bins[Math.floor(u[i]! * 64)]!++
      mean += u[i]!
      if (i > 0) lag += (u[i]! - 0.5) * (u[i - 1]! - 0.5)
    }
    expect(outside).toBe(0)
    const expected = n / 64
    const chi2 = bins.reduce((s, b) => s + (b - expected) ** 2 / expected, 0)
    expect(chi2).toBeLessThan(120) // 63 degrees of freedom: p ≈ 1e-5
    expect(Math.abs(mean / n - 0.5)).toBeLessThan(0.005)
    expect(Math.abs(lag / n) / (1 / 12)).toBeLessThan(0.02)
  })

  it("Bernoulli(p) trials hit p", () => {
    const k = Prng.key(3, "t", 2)
    const n = 200000
    let kept = 0
    for (let i = 0; i < n; i++) if (Prng.uniform(k, i) < 0.3) kept++
    expect(Math.abs(kept / n - 0.3)).toBeLessThan(4 * Math.sqrt((0.3 * 0.7) / n))
  })
})
