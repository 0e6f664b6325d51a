import { Result } from "effect"
import { describe, expect, it } from "vitest"
import * as ModelStock from "../../../src/merge/kernels/ModelStock.ts"
import { expectClose, expectSameBits, family, normal } from "./helpers.ts"

/** mergekit's model stock in float64, rows given explicitly. */
const reference = (base: Float32Array, models: ReadonlyArray<Float32Array>, rowLength: number): Float64Array => {
  const out = new Float64Array(base.length)
  const N = models.length
  for (let r = 0; r * rowLength < base.length; r++) {
    const row = (x: ArrayLike<number>) => Array.from({ length: rowLength }, (_, k) => x[r * rowLength + k]!)
    const w0 = row(base)
    const offsets = models.map((m) => row(m).map((v, k) => v - w0[k]!))
    const cosines: Array<number> = []
    for (let i = 0; i < N; i++) {
      for (let k = i + 1; k < N; k++) {
        const dot = offsets[i]!.reduce((s, v, e) => s + v * offsets[k]![e]!, 0)
        const np = Math.hypot(...offsets[i]!) * Math.hypot(...offsets[k]!)
        cosines.push(Math.min(1, Math.max(-1, dot / Math.max(np, 1e-6))))
      }
    }
    const cos = cosines.reduce((a, b) => a + b, 0) / cosines.length
    const t = (N * cos) / (1 + (N - 1) * cos)
    for (let k = 0; k < rowLength; k++) {
      const avg = models.reduce((s, m) => s + m[r * rowLength + k]!, 0) / N
      out[r * rowLength + k] = t * avg + (1 - t) * w0[k]!
    }
  }
  return out
}

const merge = (base: Float32Array, models: ReadonlyArray<Float32Array>, shape: ReadonlyArray<number>, filterWise = false) => {
  const rowLength = ModelStock.rowLength(shape, { filterWise })
  const plan = ModelStock.plan(ModelStock.statistics(models, base, rowLength), models.length, rowLength, "w")
  if (Result.isFailure(plan)) return plan.failure
  const out = new Float32Array(base.length)
  ModelStock.apply(plan.success, out, base, models)
  return { out, plan: plan.success }
}

describe("model stock", () => {
  const { base, models } = family(5, 1200, 4, 0.1)
  // Correlated fine-tunes: a shared direction plus noise, so cos > 0.
  const shared = normal(99, 1200, 0.1)
  const correlated = models.map((m, i) => Float32Array.from(m, (v, j) => v + shared[j]! * (1 + i * 0.1)))

  it.each([2, 3, 4])("matches mergekit's algorithm with %i fine-tunes", (count) => {
    const ms = correlated.slice(0, count)
    const r = merge(base, ms, [1200])
    if (!("out" in r)) return expect.fail(r.message)
    expectClose(r.out, reference(base, ms, 1200), 2, 1e-7)
    expect(r.plan.t[0]!).toBeGreaterThan(0)
    expect(r.plan.t[0]!).toBeLessThan(1)
  })

  it("filter-wise: one t per row", () => {
    const r = merge(base, correlated, [30, 40], true)
    if (!("out" in r)) return expect.fail(r.message)
    expect(r.plan.t.length).toBe(30)
    expectClose(r.out, reference(base, correlated, 40), 2, 1e-7)
  })

  it("orthogonal task vectors give t = 0 for N = 2 (the base); identical ones t = 1 (their mean)", () => {
    const a = Float32Array.from(base), b = Float32Array.from(base)
    a[0] = base[0]! + 1
    b[1] = base[1]! + 1
    const r = merge(base, [a, b], [1200])
    if (!("out" in r)) return expect.fail(r.message)
    expect(r.plan.t[0]).toBe(0)
    expectSameBits(r.out, base)
    const same = merge(base, [correlated[0]!, correlated[0]!], [1200])
    if (!("out" in same)) return expect.fail(same.message)
    expect(same.plan.t[0]).toBeCloseTo(1, 12)
  })

  it("fine-tunes equal to the base return the base", () => {
    const r = merge(base, [base, base, base], [1200])
    if (!("out" in r)) return expect.fail(r.message)
    expectSameBits(r.out, base)
  })

  it("needs at least two fine-tunes; antiparallel pairs are degenerate", () => {
    const one = merge(base, [correlated[0]!], [1200])
    expect("out" in one ? "" : one._tag).toBe("MergeInputMismatch")
    const minus = Float32Array.from(correlated[0]!, (v, j) => 2 * base[j]! - v)
    const anti = merge(base, [correlated[0]!, minus], [1200])
    expect("out" in anti ? "" : anti._tag).toBe("DegenerateMerge")
  })
})
