// The one-sided Jacobi SVD against a float64 construction with known factors, and against numpy
// (reference/lora_reference.py → lora_reference.json).
import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Svd from "../../src/extract/Svd.ts"

const reference = JSON.parse(fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), "reference/lora_reference.json"), "utf8")) as {
  energies: Array<number>
  shapes: Record<string, [number, number]>
  base: Record<string, Array<number>>
  fine_tunes: Record<string, Record<string, Array<number>>>
  expected: Record<string, Record<string, { singular_values: Array<number>; rank_for_energy: Record<string, number>; error_by_rank: Array<number> }>>
}

// A seeded generator (mulberry32), so the constructions are the same on every run.
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), seed | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5
}

// k orthonormal vectors of length n (Gram–Schmidt, twice for accuracy), as rows.
const orthonormal = (n: number, k: number, next: () => number): Array<Float64Array> => {
  const rows: Array<Float64Array> = []
  for (let c = 0; c < k; c++) {
    const v = Float64Array.from({ length: n }, next)
    for (let pass = 0; pass < 2; pass++) {
      for (const q of rows) {
        const d = v.reduce((s, x, i) => s + x * q[i]!, 0)
        for (let i = 0; i < n; i++) v[i] = v[i]! - d * q[i]!
      }
    }
    const norm = Math.hypot(...v)
    rows.push(v.map((x) => x / norm))
  }
  return rows
}

// Σ σ_c u_c v_cᵀ, row-major m×n.
const lowRank = (m: number, n: number, sigma: ReadonlyArray<number>, seed: number): Float64Array => {
  const next = random(seed)
  const u = orthonormal(m, sigma.length, next)
  const v = orthonormal(n, sigma.length, next)
  const a = new Float64Array(m * n)
  sigma.forEach((s, c) => {
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) a[i * n + j] = a[i * n + j]! + s * u[c]![i]! * v[c]![j]!
  })
  return a
}

const delta = (key: string, name: string) => {
  const ft = reference.fine_tunes[key]![name]!
  return Float64Array.from(reference.base[name]!, (b, i) => ft[i]! - b)
}

describe("Svd.svd: float64 construction with known factors", () => {
  for (const [m, n] of [[7, 5], [4, 9], [6, 6]] as const) {
    it(`${m}×${n}, rank 3: singular values, orthonormal factors, exact reconstruction`, () => {
      const sigma = [3, 1.25, 0.5]
      const a = lowRank(m, n, sigma, m * 31 + n)
      const d = Svd.svd(a, m, n)
      const k = Math.min(m, n)
      expect(d.s.length).toBe(k)
      sigma.forEach((s, i) => expect(Math.abs(d.s[i]! - s)).toBeLessThan(1e-12))
      for (let i = 3; i < k; i++) expect(d.s[i]!).toBeLessThan(1e-12)
      // UᵀU = I and VᵀV = I on the kept columns.
      for (const [f, rows] of [[d.u, m], [d.v, n]] as const) {
        for (let p = 0; p < 3; p++) for (let q = 0; q < 3; q++) {
          let dot = 0
          for (let i = 0; i < rows; i++) dot += f[i * k + p]! * f[i * k + q]!
          expect(Math.abs(dot - (p === q ? 1 : 0))).toBeLessThan(1e-12)
        }
      }
      const f = Svd.factors(d, 3)
      const fit = Svd.reconstruction(a, f.b, f.a, m, n, 3)
      expect(Svd.relativeError(fit)).toBeLessThan(1e-12)
      // Rank 1 keeps σ₁ only: the error is √(σ₂² + σ₃²)/‖A‖.
      const one = Svd.factors(d, 1)
      expect(Svd.relativeError(Svd.reconstruction(a, one.b, one.a, m, n, 1))).toBeCloseTo(Math.hypot(1.25, 0.5) / Math.hypot(...sigma), 12)
    })
  }

  it("is deterministic: the same matrix gives the same bits", () => {
    const a = lowRank(9, 7, [2, 1, 0.5, 0.25, 0.125], 7)
    const x = Svd.svd(a, 9, 7)
    const y = Svd.svd(a.slice(), 9, 7)
    expect(Array.from(y.s)).toEqual(Array.from(x.s))
    expect(Array.from(y.u)).toEqual(Array.from(x.u))
    expect(Array.from(y.v)).toEqual(Array.from(x.v))
  })

  it("a zero matrix: zero singular values, zero factors, no error", () => {
    const a = new Float64Array(12)
    const d = Svd.svd(a, 3, 4)
    expect(Array.from(d.s)).toEqual([0, 0, 0])
    const f = Svd.factors(d, 2)
    expect(f.a.every((x) => x === 0) && f.b.every((x) => x === 0)).toBe(true)
    expect(Svd.relativeError(Svd.reconstruction(a, f.b, f.a, 3, 4, 2))).toBe(0)
    expect(Svd.rankForEnergy(d.s, 0.9)).toBe(1)
  })
})

describe("Svd against numpy (lora_reference.json)", () => {
  for (const [key, layers] of Object.entries(reference.expected)) {
    for (const [name, want] of Object.entries(layers)) {
      it(`${key} ${name}: singular values, rank for each energy, truncation error per rank`, () => {
        const [rows, cols] = reference.shapes[name]!
        // numpy decomposes the embedding as stored here (vocab × dim): the singular values are the same for ΔWᵀ.
        const d = Svd.svd(delta(key, name), rows, cols)
        want.singular_values.forEach((s, i) => expect(Math.abs(d.s[i]! - s)).toBeLessThan(1e-12))
        for (const energy of reference.energies) expect(Svd.rankForEnergy(d.s, energy)).toBe(want.rank_for_energy[String(energy)])
        want.error_by_rank.forEach((e, i) => {
          const f = Svd.factors(d, i + 1)
          expect(Math.abs(Svd.relativeError(Svd.reconstruction(delta(key, name), f.b, f.a, rows, cols, i + 1)) - e)).toBeLessThan(1e-9)
        })
      })
    }
  }
})
