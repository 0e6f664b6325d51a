import { assert, describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import * as Schedule from "../../src/train/Schedule.ts"

const progress = (step: number) => ({ step, stepsPerEpoch: 10, totalSteps: 100 })

describe("learning-rate schedules", () => {
  it("constant, step (per epoch) and cosine (per step, ending at min)", () => {
    assert.strictEqual(Schedule.rate({ type: "constant" }, 0.1, progress(57)), 0.1)
    const step = { type: "step", every: 3, gamma: 0.5 } as const
    assert.deepStrictEqual([0, 29, 30, 59, 60, 99].map((s) => Schedule.rate(step, 0.8, progress(s))), [0.8, 0.8, 0.4, 0.4, 0.2, 0.1])
    const cosine = { type: "cosine", min: 0.01 } as const
    assert.strictEqual(Schedule.rate(cosine, 0.1, progress(0)), 0.1)
    expect(Schedule.rate(cosine, 0.1, progress(50))).toBeCloseTo(0.055, 12)
    expect(Schedule.rate(cosine, 0.1, progress(25))).toBeCloseTo(0.01 + 0.09 * (1 + Math.cos(Math.PI / 4)) / 2, 12)
    expect(Schedule.rate(cosine, 0.1, progress(100))).toBeCloseTo(0.01, 12)
  })

  it("linear warmup reaches the base rate at the end of warmup, then the schedule runs on from there", () => {
    const warm = { type: "cosine", warmupSteps: 4 } as const
    assert.deepStrictEqual([0, 1, 2, 3].map((s) => Schedule.rate(warm, 1, progress(s))), [0.25, 0.5, 0.75, 1])
    assert.strictEqual(Schedule.rate(warm, 1, progress(4)), 1)
    expect(Schedule.rate(warm, 1, progress(52))).toBeCloseTo(0.5, 12)
    assert.strictEqual(Schedule.rate({ type: "constant", warmupSteps: 2 }, 0.4, progress(0)), 0.2)
  })

  it("decodes from config and rejects nonsense", () => {
    const decode = Schema.decodeUnknownSync(Schedule.Schedule)
    assert.deepStrictEqual(decode({ type: "step", every: 2, gamma: 0.1, warmupSteps: 10 }), { type: "step", every: 2, gamma: 0.1, warmupSteps: 10 })
    expect(() => decode({ type: "step", every: 0, gamma: 0.1 })).toThrow()
    expect(() => decode({ type: "cosine", min: -1 })).toThrow()
    expect(() => decode({ type: "exponential" })).toThrow()
  })
})
