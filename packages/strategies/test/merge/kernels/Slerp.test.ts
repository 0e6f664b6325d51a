import { Result } from "effect"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as Multislerp from "../../../src/merge/kernels/Multislerp.ts"
import * as Slerp from "../../../src/merge/kernels/Slerp.ts"
import { expectClose, expectSameBits, family, normal } from "./helpers.ts"

const norm = (v: ArrayLike<number>) => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0))

/** mergekit's slerp, step by step in float64. */
const slerpRef = (t: number, a: ArrayLike<number>, b: ArrayLike<number>): Float64Array => {
  const na = norm(a), nb = norm(b)
  const ua = Array.from(a, (x) => (na > 1e-8 ? x / na : x))
  const ub = Array.from(b, (x) => (nb > 1e-8 ? x / nb : x))
  const dot = ua.reduce((s, x, j) => s + x * ub[j]!, 0)
  if (Math.abs(dot) > 0.9995) return Float64Array.from(a, (x, j) => (1 - t) * x + t * b[j]!)
  const theta = Math.acos(dot)
  const s0 = Math.sin(theta - theta * t) / Math.sin(theta)
  const s1 = Math.sin(theta * t) / Math.sin(theta)
  return Float64Array.from(a, (x, j) => s0 * x + s1 * b[j]!)
}

const slerp = (t: number, a: Float32Array, b: Float32Array, base?: Float32Array) => {
  const plan = Result.getOrThrow(Slerp.plan({ t }, Slerp.statistics(a, b, base), base !== undefined, "w"))
  const out = new Float32Array(a.length)
  Slerp.apply(plan, out, a, b, base)
  return { out, plan }
}

describe("slerp", () => {
  const a = normal(1, 4096), b = normal(2, 4096)

  it.each([0.1, 0.35, 0.5, 0.9, 1.4, -0.2])("matches mergekit's algorithm in float64 at t = %d", (t) => {
    const { out, plan } = slerp(t, a, b)
    expect(plan.colinear).toBe(false)
    expectClose(out, slerpRef(t, a, b), 2, 1e-7)
  })

  it("t = 0 and t = 1 return the endpoints exactly", () => {
    expectSameBits(slerp(0, a, b).out, a)
    expectSameBits(slerp(1, a, b).out, b)
    const { base, models } = family(3, 1000, 2)
    expectSameBits(slerp(0, models[0]!, models[1]!, base).out, models[0]!)
    expectSameBits(slerp(1, models[0]!, models[1]!, base).out, models[1]!)
  })

  it("colinear inputs fall back to lerp (same direction and opposite)", () => {
    const twice = Float32Array.from(a, (x) => 2 * x)
    const { out, plan } = slerp(0.3, a, twice)
    expect(plan.colinear).toBe(true)
    expectClose(out, Float64Array.from(a, (x) => 0.7 * x + 0.3 * 2 * x), 1)
    const opposite = Float32Array.from(a, (x) => -x)
    expect(slerp(0.5, a, opposite).plan.colinear).toBe(true)
    expectSameBits(slerp(0.4, a, a).out, a)
  })

  it("with a base it interpolates the task vectors", () => {
    const { base, models } = family(4, 3000, 2, 0.1)
    const ta = Float64Array.from(models[0]!, (x, j) => x - base[j]!)
    const tb = Float64Array.from(models[1]!, (x, j) => x - base[j]!)
    const r = slerpRef(0.6, ta, tb)
    expectClose(slerp(0.6, models[0]!, models[1]!, base).out, Float64Array.from(base, (x, j) => x + r[j]!), 2, 1e-7)
  })

  it("keeps the norm between the endpoints' for orthogonal unit-norm inputs (property)", () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1, noNaN: true }), (t) => {
        const x = new Float32Array(64), y = new Float32Array(64)
        x[0] = 1
        y[1] = 1
        expect(norm(slerp(t, x, y).out)).toBeCloseTo(1, 6)
      }),
      { numRuns: 30 }
    )
  })

  it("is symmetric: slerp(t, a, b) = slerp(1 − t, b, a) (property)", () => {
    fc.assert(
      fc.property(fc.double({ min: -0.5, max: 1.5, noNaN: true }), fc.integer({ min: 1, max: 1000 }), (t, seed) => {
        const x = normal(seed, 128), y = normal(seed + 1, 128)
        expectClose(slerp(t, x, y).out, Float64Array.from(slerp(1 - t, y, x).out), 4, 1e-6)
      }),
      { numRuns: 30 }
    )
  })

  it("zero vectors follow mergekit (cos Ω = 0, no NaN)", () => {
    const zero = new Float32Array(100)
    const { out } = slerp(0.5, zero, normal(5, 100))
    expect(out.every(Number.isFinite)).toBe(true)
  })

  it("rejects non-finite t and thresholds outside [0, 1)", () => {
    const g = Slerp.statistics(a, b)
    expect(Result.isFailure(Slerp.plan({ t: Number.NaN }, g, false, "w"))).toBe(true)
    expect(Result.isFailure(Slerp.plan({ t: 0.5, dotThreshold: 1 }, g, false, "w"))).toBe(true)
  })
})

/** mergekit's multislerp, step by step in float64 (tangent space, exponential map). */
const multislerpRef = (xs: ReadonlyArray<ArrayLike<number>>, weights: ReadonlyArray<number>, eps = 1e-8): Float64Array => {
  const total = weights.reduce((s, w) => s + w, 0)
  const w = weights.map((x) => x / total)
  const n = xs[0]!.length
  const norms = xs.map(norm)
  const units = xs.map((x, i) => Array.from(x, (v) => v / (norms[i]! + eps)))
  const mean = new Float64Array(n)
  units.forEach((u, i) => u.forEach((v, j) => (mean[j] = mean[j]! + w[i]! * v)))
  const meanNorm = norm(mean)
  const m = mean.map((v) => v / meanNorm)
  const tangent = new Float64Array(n)
  units.forEach((u, i) => {
    const d = u.reduce((s, v, j) => s + v * m[j]!, 0)
    u.forEach((v, j) => (tangent[j] = tangent[j]! + w[i]! * (v - d * m[j]!)))
  })
  const tn = norm(tangent) + eps
  const avgNorm = norms.reduce((s, x, i) => s + x * w[i]!, 0)
  return Float64Array.from(m, (v, j) => (v * Math.cos(tn) + tangent[j]! * (Math.sin(tn) / tn)) * avgNorm)
}

describe("multislerp", () => {
  const merge = (xs: ReadonlyArray<Float32Array>, weights: ReadonlyArray<number>, base?: Float32Array) => {
    const plan = Multislerp.plan({ weights }, Multislerp.statistics(xs, base), base !== undefined, "w")
    if (Result.isFailure(plan)) return plan.failure
    const out = new Float32Array(xs[0]!.length)
    Multislerp.apply(plan.success, out, xs, base)
    return out
  }

  it.each([[2, [0.5, 0.5]], [3, [0.2, 0.3, 0.5]], [5, [1, 2, 3, 4, 5]]] as const)("matches mergekit's algorithm for %i inputs", (count, weights) => {
    const xs = Array.from({ length: count }, (_, i) => normal(10 + i, 2000))
    expectClose(merge(xs, weights) as Float32Array, multislerpRef(xs, weights), 8, 1e-6)
  })

  it("with a base it works on task vectors", () => {
    const { base, models } = family(7, 2000, 3, 0.2)
    const taus = models.map((x) => Float64Array.from(x, (v, j) => v - base[j]!))
    const r = multislerpRef(taus, [1, 1, 2])
    expectClose(merge(models, [1, 1, 2], base) as Float32Array, Float64Array.from(base, (b, j) => b + r[j]!), 8, 1e-6)
  })

  it("two inputs are SLERP at t = w₁ when their norms are equal", () => {
    const a = normal(1, 1000), b0 = normal(2, 1000)
    const b = Float32Array.from(b0, (v) => (v * norm(a)) / norm(b0))
    expectClose(merge([a, b], [0.5, 0.5]) as Float32Array, slerpRef(0.5, a, b), 8, 1e-6)
  })

  it("one input is returned as is; copies of one input return it", () => {
    const x = normal(3, 500)
    expectSameBits(merge([x], [1]) as Float32Array, x)
    expectClose(merge([x, x, x], [1, 2, 3]) as Float32Array, Float64Array.from(x), 2)
  })

  it("antipodal inputs: lerp for two, an error for more", () => {
    const x = normal(4, 300)
    const minus = Float32Array.from(x, (v) => -v)
    expect(Array.from(merge([x, minus], [0.5, 0.5]) as Float32Array).every((v) => Math.abs(v) < 1e-6)).toBe(true)
    const e = merge([x, minus, x, minus], [1, 1, 1, 1])
    expect(e instanceof Float32Array ? "" : e._tag).toBe("DegenerateMerge")
  })
})
