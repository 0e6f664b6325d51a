// The randomized truncated SVD against numpy's exact singular values of two matrices rebuilt here
// from the LCG of reference/randomized_reference.py (→ randomized_reference.json), and against
// the exact Jacobi SVD of Svd.ts on smaller ones.
import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as RandomizedSvd from "../../src/extract/RandomizedSvd.ts"
import * as Svd from "../../src/extract/Svd.ts"

interface Expected {
  shape: [number, number]
  total: number
  singular_values: Array<number>
  error_by_rank: Record<string, number>
  rank_for_energy: Record<string, number>
}
const reference = JSON.parse(fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), "reference/randomized_reference.json"), "utf8")) as {
  ranks: Array<number>
  energies: Array<number>
  matrices: Record<"decaying" | "planted", Expected>
}

// The script's LCG: x ← 1664525·x + 1013904223 mod 2³², value x/2³² − 0.5.
const lcg = (seed: number, count: number): Float64Array => {
  const out = new Float64Array(count)
  let x = seed >>> 0
  for (let i = 0; i < count; i++) {
    x = (Math.imul(1664525, x) + 1013904223) >>> 0
    out[i] = x / 4294967296 - 0.5
  }
  return out
}

const unit = (seed: number, n: number): Float64Array => {
  const w = lcg(seed, n)
  const norm = Math.sqrt(w.reduce((s, x) => s + x * x, 0))
  return w.map((x) => x / norm)
}

// H_u·diag(σ)·H_v elementwise, the script's `reflected` operation for operation.
const reflected = (m: number, n: number, sigma: ReadonlyArray<number>, seed: number): Float64Array => {
  const k = sigma.length
  const wu = unit(seed, m)
  const wv = unit(seed + 1, n)
  let gamma = 0
  for (let c = 0; c < k; c++) gamma += wu[c]! * sigma[c]! * wv[c]!
  const s = new Float64Array(n)
  for (let j = 0; j < n; j++) s[j] = j < k ? wu[j]! * sigma[j]! - 2 * wv[j]! * gamma : -2 * wv[j]! * gamma
  const a = new Float64Array(m * n)
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      const second = -2 * wu[i]! * s[j]!
      a[i * n + j] = i < k ? sigma[i]! * ((i === j ? 1 : 0) - 2 * wv[i]! * wv[j]!) + second : second
    }
  }
  return a
}

const matrices = {
  decaying: () => reflected(1024, 1024, Array.from({ length: 1024 }, (_, i) => Math.exp(-i / 16)), 11),
  planted: () => {
    const a = reflected(512, 2048, Array.from({ length: 16 }, (_, c) => 4 * 0.85 ** c), 23)
    const noise = lcg(29, a.length)
    for (let i = 0; i < a.length; i++) a[i] = a[i]! + 0.01 * noise[i]!
    return a
  }
}

const errorOf = (a: Float64Array, m: number, n: number, d: Svd.Svd, rank: number): number => {
  const f = Svd.factors(d, rank)
  return Svd.relativeError(Svd.reconstruction(a, f.b, f.a, m, n, f.rank))
}

const maxRelative = (got: ArrayLike<number>, want: ReadonlyArray<number>, count: number): number => {
  let worst = 0
  for (let i = 0; i < count; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / want[i]!)
  return worst
}

describe("RandomizedSvd.truncated against numpy (randomized_reference.json)", () => {
  // Tolerances for the default q = 2 (measured: decaying r=16 last value 3.3e-4, first half
  // 1.9e-6, error +3.5e-5; r=32 5.4e-4, 5.7e-8, +1.5e-5). The last kept values are the least
  // accurate: their sketch gap is σ_{r+11}/σ_r = e^(−10/16) only.
  it("decaying 1024×1024 (σ_i = e^(−i/16)), rank 16 and 32: values to 1e-3 (first half 1e-5), error within 1e-4 of optimal", () => {
    const want = reference.matrices.decaying
    const [m, n] = want.shape
    const a = matrices.decaying()
    expect(Math.abs(a.reduce((s, x) => s + x * x, 0) - want.total) / want.total).toBeLessThan(1e-12)
    for (const rank of [16, 32]) {
      const t = RandomizedSvd.truncated(a, m, n, { rank })
      expect(t.method).toBe("randomized")
      expect(t.rank).toBe(rank)
      expect(t.svd.s.length).toBe(rank + 10)
      expect(maxRelative(t.svd.s, want.singular_values, rank)).toBeLessThan(1e-3)
      expect(maxRelative(t.svd.s, want.singular_values, rank / 2)).toBeLessThan(1e-5)
      const error = errorOf(a, m, n, t.svd, rank)
      const optimal = want.error_by_rank[String(rank)]!
      expect(error).toBeGreaterThanOrEqual(optimal * (1 - 1e-12))
      expect(error - optimal).toBeLessThan(1e-4)
    }
  })

  // Measured: r=8 values 1.0e-7, error +8.6e-9; r=16 (σ₁₆ = 0.38 just above the noise edge
  // ≈ 0.19) last value 2.9e-3, first half 1.2e-8, error +2.1e-5.
  it("planted rank 16 + noise, 512×2048 (wide), rank 8 and 16: values to 5e-3 (first half 1e-6), error within 5e-5 of optimal", () => {
    const want = reference.matrices.planted
    const [m, n] = want.shape
    const a = matrices.planted()
    for (const rank of [8, 16]) {
      const t = RandomizedSvd.truncated(a, m, n, { rank })
      expect(t.method).toBe("randomized")
      expect(maxRelative(t.svd.s, want.singular_values, rank)).toBeLessThan(5e-3)
      expect(maxRelative(t.svd.s, want.singular_values, rank / 2)).toBeLessThan(1e-6)
      const error = errorOf(a, m, n, t.svd, rank)
      const optimal = want.error_by_rank[String(rank)]!
      expect(error).toBeGreaterThanOrEqual(optimal * (1 - 1e-12))
      expect(error - optimal).toBeLessThan(5e-5)
    }
  })

  it("energy targets: the decaying matrix gets numpy's ranks (19 for 0.9, 37 for 0.99)", () => {
    const want = reference.matrices.decaying
    const [m, n] = want.shape
    const a = matrices.decaying()
    for (const energy of reference.energies) {
      const t = RandomizedSvd.truncated(a, m, n, { energy })
      expect(t.method).toBe("randomized")
      expect(t.rank).toBe(want.rank_for_energy[String(energy)])
      expect(Math.abs(t.total - want.total) / want.total).toBeLessThan(1e-12)
      // It keeps at least `energy` of ‖A‖²: the error is at most √(1 − energy).
      expect(errorOf(a, m, n, t.svd, t.rank)).toBeLessThanOrEqual(Math.sqrt(1 - energy) + 1e-9)
    }
  })

  it("energy 0.9 on the planted matrix: its noise tail is flat, so k grows to 128; the rank is numpy's 72 or a few above", () => {
    const want = reference.matrices.planted
    const [m, n] = want.shape
    const t = RandomizedSvd.truncated(matrices.planted(), m, n, { energy: 0.9 })
    expect(t.method).toBe("randomized")
    expect(t.svd.s.length).toBe(128)
    // Sketched values only underestimate, so the rank never falls short of the exact one.
    expect(t.rank).toBeGreaterThanOrEqual(want.rank_for_energy["0.9"]!)
    // Values ~72 sit in the noise bulk, which a 128-wide sketch underestimates by a few %: 76 here.
    expect(t.rank).toBeLessThanOrEqual(want.rank_for_energy["0.9"]! + 6)
    expect(errorOf(matrices.planted(), m, n, t.svd, t.rank)).toBeLessThanOrEqual(Math.sqrt(0.1))
  })
})

describe("RandomizedSvd: paths, factors, determinism", () => {
  // A 300×400 decaying matrix: big enough for the randomized path with exactBelow lowered.
  const m = 300
  const n = 400
  const a = reflected(m, n, Array.from({ length: 300 }, (_, i) => 2 * 0.7 ** i), 5)

  it("agrees with the exact Jacobi on the leading values and gives orthonormal factors", () => {
    const exact = Svd.svd(a, m, n)
    const t = RandomizedSvd.truncated(a, m, n, { rank: 12 }, { exactBelow: 64 })
    expect(t.method).toBe("randomized")
    expect(maxRelative(t.svd.s, Array.from(exact.s), 12)).toBeLessThan(1e-10)
    const k = t.svd.s.length
    for (const [f, rows] of [[t.svd.u, m], [t.svd.v, n]] as const) {
      for (let p = 0; p < 12; p++) for (let q = 0; q < 12; q++) {
        let dot = 0
        for (let i = 0; i < rows; i++) dot += f[i * k + p]! * f[i * k + q]!
        expect(Math.abs(dot - (p === q ? 1 : 0))).toBeLessThan(1e-10)
      }
    }
    expect(Math.abs(errorOf(a, m, n, t.svd, 12) - errorOf(a, m, n, exact, 12))).toBeLessThan(1e-10)
  })

  it("is deterministic: the same matrix and seed give the same bits; another seed differs only in rounding", () => {
    const x = RandomizedSvd.randomized(a, m, n, 20)
    const y = RandomizedSvd.randomized(a.slice(), m, n, 20)
    expect(Array.from(y.s)).toEqual(Array.from(x.s))
    expect(Array.from(y.u)).toEqual(Array.from(x.u))
    expect(Array.from(y.v)).toEqual(Array.from(x.v))
    const z = RandomizedSvd.randomized(a, m, n, 20, { seed: 7 })
    expect(maxRelative(z.s, Array.from(x.s), 8)).toBeLessThan(1e-12)
  })

  it("small matrices, and sketches of at least half the smaller side, take the exact path", () => {
    const small = reflected(40, 30, [3, 2, 1], 3)
    const t = RandomizedSvd.truncated(small, 40, 30, { rank: 2 })
    expect(t.method).toBe("exact")
    expect(t.svd.s.length).toBe(30)
    expect(t.rank).toBe(2)
    expect(RandomizedSvd.truncated(a, m, n, { rank: 140 }, { exactBelow: 64 }).method).toBe("exact")
    // energy on a small matrix: rankForEnergy of the full spectrum, as before.
    const e = RandomizedSvd.truncated(small, 40, 30, { energy: 0.99 })
    expect(e.rank).toBe(Svd.rankForEnergy(e.svd.s, 0.99))
  })

  it("a zero matrix and a rank-deficient one: zero values past the rank, no NaN", () => {
    const zero = RandomizedSvd.truncated(new Float64Array(300 * 300), 300, 300, { rank: 4 }, { exactBelow: 64 })
    expect(zero.method).toBe("randomized")
    expect(Array.from(zero.svd.s).every((s) => s === 0)).toBe(true)
    expect(RandomizedSvd.truncated(new Float64Array(300 * 300), 300, 300, { energy: 0.9 }, { exactBelow: 64 }).rank).toBe(1)
    const three = reflected(300, 300, [3, 2, 1], 9)
    const t = RandomizedSvd.truncated(three, 300, 300, { rank: 5 }, { exactBelow: 64 })
    expect(maxRelative(t.svd.s, [3, 2, 1], 3)).toBeLessThan(1e-12)
    for (let i = 3; i < t.svd.s.length; i++) expect(t.svd.s[i]!).toBeLessThan(1e-12)
    expect(Array.from(t.svd.u).every(Number.isFinite) && Array.from(t.svd.v).every(Number.isFinite)).toBe(true)
    expect(errorOf(three, 300, 300, t.svd, 5)).toBeLessThan(1e-12)
  })
})
