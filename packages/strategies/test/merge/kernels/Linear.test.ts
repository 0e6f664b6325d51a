import { Result } from "effect"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as Linear from "../../../src/merge/kernels/Linear.ts"
import * as Passthrough from "../../../src/merge/kernels/Passthrough.ts"
import { overBase, weightedSum } from "../../../src/merge/kernels/WeightedSum.ts"
import { expectClose, expectSameBits, normal } from "./helpers.ts"

/** Σ wᵢxᵢ / Σ wᵢ in float64, the plain way. */
const reference = (inputs: ReadonlyArray<Float32Array>, weights: ReadonlyArray<number>, normalize: boolean): Float64Array => {
  const total = weights.reduce((a, b) => a + b, 0)
  const out = new Float64Array(inputs[0]!.length)
  for (let j = 0; j < out.length; j++) {
    let s = 0
    for (let i = 0; i < inputs.length; i++) s += weights[i]! * inputs[i]![j]!
    out[j] = normalize ? s / total : s
  }
  return out
}

const planned = (params: Linear.LinearParams, models: number) => Result.getOrThrow(Linear.plan(params, models, "w"))

describe("linear", () => {
  it.each([1, 2, 3, 4, 5, 7, 8, 9, 13])("matches the float64 reference for %i models", (count) => {
    const inputs = Array.from({ length: count }, (_, i) => normal(100 + i, 3001))
    const weights = Array.from({ length: count }, (_, i) => 0.3 + ((i * 7) % 5) * 0.4)
    for (const normalize of [true, false]) {
      const out = new Float32Array(3001)
      Linear.apply(planned({ weights, normalize }, count), out, inputs)
      expectClose(out, reference(inputs, weights, normalize), 1)
    }
  })

  it("negative weights and extrapolation", () => {
    const inputs = [normal(1, 500), normal(2, 500)]
    const out = new Float32Array(500)
    Linear.apply(planned({ weights: [1.5, -0.5] }, 2), out, inputs)
    expectClose(out, reference(inputs, [1.5, -0.5], true), 1)
  })

  it("a model averaged with copies of itself is itself, bit for bit", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), fc.array(fc.double({ min: 0.01, max: 10, noNaN: true }), { minLength: 9, maxLength: 9 }), (count, w) => {
        const x = normal(count, 257, 3)
        const out = new Float32Array(257)
        Linear.apply(planned({ weights: w.slice(0, count) }, count), out, Array.from({ length: count }, () => x))
        expectSameBits(out, x)
      }),
      { numRuns: 40 }
    )
  })

  it("any split into ranges gives the same bytes", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 999 }), { maxLength: 6 }), (points) => {
        const inputs = Array.from({ length: 6 }, (_, i) => normal(7 + i, 999))
        const plan = planned({ weights: [1, 2, 3, 4, 5, 6] }, 6)
        const whole = new Float32Array(999)
        Linear.apply(plan, whole, inputs)
        const parts = new Float32Array(999)
        const cuts = [0, ...[...new Set(points)].sort((a, b) => a - b), 999]
        for (let k = 0; k + 1 < cuts.length; k++) Linear.apply(plan, parts, inputs, cuts[k], cuts[k + 1])
        expectSameBits(parts, whole)
      }),
      { numRuns: 30 }
    )
  })

  it("stays within the inputs' range for convex weights (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 2, maxLength: 6 }).filter((w) => w.some((x) => x > 1e-3)), (w) => {
        const inputs = w.map((_, i) => normal(50 + i, 64))
        const out = new Float32Array(64)
        Linear.apply(planned({ weights: w }, w.length), out, inputs)
        for (let j = 0; j < 64; j++) {
          const values = inputs.map((x) => x[j]!)
          expect(out[j]!).toBeGreaterThanOrEqual(Math.min(...values))
          expect(out[j]!).toBeLessThanOrEqual(Math.max(...values))
        }
      }),
      { numRuns: 30 }
    )
  })

  it("in place: out may be one of the inputs", () => {
    const a = normal(3, 100), b = normal(4, 100)
    const expected = reference([a, b], [1, 3], true)
    Linear.apply(planned({ weights: [1, 3] }, 2), a, [a, b])
    expectClose(a, expected, 1)
  })

  it("rejects weights that do not fit", () => {
    const fail = (params: Linear.LinearParams, models: number) => {
      const r = Linear.plan(params, models, "layers.0.w")
      expect(Result.isFailure(r)).toBe(true)
      return Result.isFailure(r) ? r.failure : undefined
    }
    expect(fail({ weights: [1] }, 2)?.message).toContain("1 weights for 2 models")
    expect(fail({ weights: [1, -1] }, 2)?.message).toMatch(/sum to 0/)
    expect(fail({ weights: [1, Number.NaN] }, 2)?._tag).toBe("InvalidMergeParameter")
    expect(fail({ weights: [1, -1] }, 2)?.tensor).toBe("layers.0.w")
    expect(Result.isSuccess(Linear.plan({ weights: [1, -1], normalize: false }, 2, "w"))).toBe(true)
  })
})

describe("weighted sum over a base", () => {
  it("overBase turns task-vector coefficients into a weighted sum", () => {
    const base = normal(5, 300), a = normal(6, 300), b = normal(7, 300)
    const out = new Float32Array(300)
    weightedSum(out, [base, a, b], overBase([0.7, -0.2]))
    const expected = Float64Array.from(base, (x, j) => x + 0.7 * (a[j]! - x) - 0.2 * (b[j]! - x))
    expectClose(out, expected, 1)
  })

  it("zero inputs give zeros", () => {
    const out = new Float32Array(10).fill(3)
    weightedSum(out, [], [])
    expect(Array.from(out)).toEqual(Array(10).fill(0))
  })
})

describe("passthrough", () => {
  it("copies exactly, or scales", () => {
    const x = normal(9, 1000, 4)
    const out = new Float32Array(1000)
    Passthrough.apply(Result.getOrThrow(Passthrough.plan({}, "t")), out, x)
    expectSameBits(out, x)
    Passthrough.apply(Result.getOrThrow(Passthrough.plan({ scale: 0.25 }, "t")), out, x)
    expectClose(out, Float64Array.from(x, (v) => v * 0.25), 1)
    Passthrough.apply(Result.getOrThrow(Passthrough.plan({ scale: 0 }, "t")), out, x)
    expect(out.every((v) => v === 0)).toBe(true)
  })

  it("rejects a non-finite scale", () => {
    expect(Result.isFailure(Passthrough.plan({ scale: Number.POSITIVE_INFINITY }, "t"))).toBe(true)
  })
})
