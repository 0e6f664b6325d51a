import { Result } from "effect"
import { describe, expect, it } from "vitest"
import * as Cholesky from "../../../src/merge/kernels/Cholesky.ts"
import * as RegMean from "../../../src/merge/kernels/RegMean.ts"
import { expectClose, normal } from "./helpers.ts"

/** XᵀX of a [samples, features] row-major activation matrix, in float64. */
const gramOf = (x: Float32Array, samples: number, features: number): Float64Array => {
  const g = new Float64Array(features * features)
  for (let s = 0; s < samples; s++) {
    for (let i = 0; i < features; i++) for (let k = 0; k < features; k++) g[i * features + k] = g[i * features + k]! + x[s * features + i]! * x[s * features + k]!
  }
  return g
}

/** Solves A·x = b by Gaussian elimination with partial pivoting (an independent solver). */
const gauss = (a: Float64Array, b: Float64Array, n: number): Float64Array => {
  const m = Array.from({ length: n }, (_, i) => [...a.subarray(i * n, (i + 1) * n), b[i]!])
  for (let c = 0; c < n; c++) {
    let p = c
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[p]![c]!)) p = r
    ;[m[c], m[p]] = [m[p]!, m[c]!]
    for (let r = c + 1; r < n; r++) {
      const f = m[r]![c]! / m[c]![c]!
      for (let k = c; k <= n; k++) m[r]![k] = m[r]![k]! - f * m[c]![k]!
    }
  }
  const x = new Float64Array(n)
  for (let r = n - 1; r >= 0; r--) {
    let s = m[r]![n]!
    for (let k = r + 1; k < n; k++) s -= m[r]![k]! * x[k]!
    x[r] = s / m[r]![r]!
  }
  return x
}

/** RegMean by the normal equations, row by row, with Gaussian elimination. */
const reference = (ws: ReadonlyArray<Float32Array>, gs: ReadonlyArray<Float64Array>, rows: number, cols: number, alpha: number): Float64Array => {
  const shrink = (g: Float64Array) => g.map((v, e) => (Math.floor(e / cols) === e % cols ? v : alpha * v))
  const gt = gs.map(shrink)
  const a = new Float64Array(cols * cols)
  gt.forEach((g) => g.forEach((v, e) => (a[e] = a[e]! + v)))
  const out = new Float64Array(rows * cols)
  for (let o = 0; o < rows; o++) {
    const rhs = new Float64Array(cols)
    ws.forEach((w, i) => {
      for (let c = 0; c < cols; c++) for (let k = 0; k < cols; k++) rhs[c] = rhs[c]! + w[o * cols + k]! * gt[i]![k * cols + c]!
    })
    out.set(gauss(a, rhs, cols), o * cols)
  }
  return out
}

describe("regmean", () => {
  const rows = 12, cols = 20, samples = 64
  const ws = [normal(1, rows * cols), normal(2, rows * cols), normal(3, rows * cols)]
  const gs = [4, 5, 6].map((s) => gramOf(normal(s, samples * cols), samples, cols))

  it.each([1, 0.9, 0.5])("matches the normal equations solved by Gaussian elimination (α = %d)", (alpha) => {
    const r = Result.getOrThrow(RegMean.merge({ alpha }, ws, gs, rows, cols, "fc.weight"))
    expect(r.jitter).toBe(0)
    expectClose(r.weight, reference(ws, gs, rows, cols, alpha), 4, 1e-6)
  })

  it("α = 0 is a per-input-feature average weighted by the Gram diagonal", () => {
    const r = Result.getOrThrow(RegMean.merge({ alpha: 0 }, ws, gs, rows, cols, "fc.weight"))
    const expected = Float64Array.from({ length: rows * cols }, (_, e) => {
      const k = e % cols
      const den = gs.reduce((s, g) => s + g[k * cols + k]!, 0)
      return ws.reduce((s, w, i) => s + w[e]! * gs[i]![k * cols + k]!, 0) / den
    })
    expectClose(r.weight, expected, 4, 1e-7)
  })

  it("equal Gram matrices give the plain average; copies of one layer return it", () => {
    const avg = Float64Array.from(ws[0]!, (_, e) => (ws[0]![e]! + ws[1]![e]! + ws[2]![e]!) / 3)
    expectClose(Result.getOrThrow(RegMean.merge({ alpha: 1 }, ws, [gs[0]!, gs[0]!, gs[0]!], rows, cols, "w")).weight, avg, 16, 1e-6)
    expectClose(Result.getOrThrow(RegMean.merge({ alpha: 0.7 }, [ws[1]!, ws[1]!], [gs[1]!, gs[2]!], rows, cols, "w")).weight, Float64Array.from(ws[1]!), 16, 1e-6)
  })

  it("a dead input feature (zero Gram row) is handled with jitter", () => {
    const dead = gs.map((g) => g.map((v, e) => (Math.floor(e / cols) === 3 || e % cols === 3 ? 0 : v)))
    const r = Result.getOrThrow(RegMean.merge({ alpha: 1 }, ws, dead, rows, cols, "w"))
    expect(r.jitter).toBeGreaterThan(0)
    expect(r.weight.every(Number.isFinite)).toBe(true)
  })

  it("rejects bad inputs with typed errors", () => {
    const tag = (r: Result.Result<unknown, { _tag: string }>) => (Result.isFailure(r) ? r.failure._tag : "ok")
    expect(tag(RegMean.merge({ alpha: 1.5 }, ws, gs, rows, cols, "w"))).toBe("InvalidMergeParameter")
    expect(tag(RegMean.merge({ alpha: 1 }, ws, gs.slice(1), rows, cols, "w"))).toBe("MergeInputMismatch")
    expect(tag(RegMean.merge({ alpha: 1 }, ws, gs, rows + 1, cols, "w"))).toBe("MergeInputMismatch")
    const asym = Float64Array.from(gs[0]!)
    asym[1] = asym[1]! + 10
    expect(tag(RegMean.merge({ alpha: 1 }, ws, [asym, gs[1]!, gs[2]!], rows, cols, "w"))).toBe("MergeInputMismatch")
    const negative = gs.map((g) => g.map((v) => -v))
    expect(tag(RegMean.merge({ alpha: 1 }, ws, negative, rows, cols, "w"))).toBe("DegenerateMerge")
  })
})

describe("cholesky", () => {
  it("factors and solves a positive definite system", () => {
    const n = 30
    const g = gramOf(normal(9, 60 * n), 60, n)
    const f = Cholesky.factor(g, n)!
    const b = Float64Array.from(normal(10, n))
    const x = Float64Array.from(b)
    Cholesky.solveInPlace(f, x)
    expectClose(x, gauss(g, b, n), 64, 1e-9)
    expect(Cholesky.factor(new Float64Array([1, 2, 2, 1]), 2)).toBeUndefined()
  })
})
