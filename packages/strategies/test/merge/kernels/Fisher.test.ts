import { Result } from "effect"
import { describe, expect, it } from "vitest"
import * as Fisher from "../../../src/merge/kernels/Fisher.ts"
import { expectClose, expectSameBits, normal } from "./helpers.ts"

const merge = (models: ReadonlyArray<Float32Array>, fishers: ReadonlyArray<Float32Array>, params: Fisher.FisherParams = {}) => {
  const out = new Float32Array(models[0]!.length)
  Fisher.apply(Result.getOrThrow(Fisher.plan(params, models, fishers, "w")), out, models, fishers)
  return out
}

describe("fisher merging", () => {
  const models = [normal(1, 3000), normal(2, 3000), normal(3, 3000)]
  const fishers = [1, 2, 3].map((s) => Float32Array.from(normal(10 + s, 3000), (v) => v * v * s))

  it("matches Σ wF̃θ / Σ wF̃ in float64", () => {
    const w = [0.5, 1, 2]
    const eps = 1e-3
    const expected = Float64Array.from(models[0]!, (_, j) => {
      let num = 0, den = 0
      for (let i = 0; i < 3; i++) {
        const f = Math.max(fishers[i]![j]!, eps)
        num += w[i]! * f * models[i]![j]!
        den += w[i]! * f
      }
      return num / den
    })
    expectClose(merge(models, fishers, { weights: w, epsilon: eps }), expected, 1)
  })

  it("equal Fisher values give the weighted average; all below ε too", () => {
    const ones = models.map(() => new Float32Array(3000).fill(2))
    const zeros = models.map(() => new Float32Array(3000))
    const avg = Float64Array.from(models[0]!, (_, j) => (models[0]![j]! + models[1]![j]! + models[2]![j]!) / 3)
    expectClose(merge(models, ones), avg, 1)
    expectClose(merge(models, zeros), avg, 1)
  })

  it("a model that is certain wins its entries", () => {
    const sure = [new Float32Array(3000).fill(1e6), new Float32Array(3000).fill(1e-6), new Float32Array(3000).fill(1e-6)]
    expectClose(merge(models, sure), Float64Array.from(models[0]!), 8, 1e-5)
  })

  it("copies of one model return it", () => {
    const x = models[0]!
    expectSameBits(merge([x, x, x], fishers), x)
  })

  it("rejects bad parameters and inputs", () => {
    const err = (p: Fisher.FisherParams, ms = models, fs: ReadonlyArray<Float32Array> = fishers) => {
      const r = Fisher.plan(p, ms, fs, "enc.w")
      return Result.isFailure(r) ? r.failure._tag : "ok"
    }
    expect(err({ epsilon: 0 })).toBe("InvalidMergeParameter")
    expect(err({ weights: [1, -1, 1] })).toBe("InvalidMergeParameter")
    expect(err({ weights: [0, 0, 0] })).toBe("InvalidMergeParameter")
    expect(err({}, models, fishers.slice(1))).toBe("MergeInputMismatch")
    expect(err({}, models, [fishers[0]!, fishers[1]!, new Float32Array(5)])).toBe("MergeInputMismatch")
  })
})
