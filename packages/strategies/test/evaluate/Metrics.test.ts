import { assert, describe, expect, it } from "@effect/vitest"
import * as Metrics from "../../src/evaluate/Metrics.ts"

describe("classification metrics", () => {
  it("accuracy, loss and per-class accuracy of hand-checkable logits", () => {
    // 4 samples, 3 classes; predictions: 0, 2, 1 (tie 1 vs 2 → lowest), 0
    const logits = [2, 0, 0, 0, 0, 1, 0, 3, 3, 1, 1, -1]
    const labels = [0, 2, 2, 1]
    const m = Metrics.fromLogits(logits, labels, 3, ["a", "b", "c"])
    assert.strictEqual(m.count, 4)
    assert.strictEqual(m.accuracy, 0.5)
    const ce = (row: Array<number>, y: number) => Math.log(row.reduce((s, z) => s + Math.exp(z), 0)) - row[y]!
    const want = (ce([2, 0, 0], 0) + ce([0, 0, 1], 2) + ce([0, 3, 3], 2) + ce([1, 1, -1], 1)) / 4
    expect(m.loss).toBeCloseTo(want, 12)
    assert.deepStrictEqual(m.perClass, [
      { class: 0, name: "a", count: 1, accuracy: 1 },
      { class: 1, name: "b", count: 1, accuracy: 0 },
      { class: 2, name: "c", count: 2, accuracy: 0.5 }
    ])
    const empty = Metrics.fromLogits([1, 0], [0], 2)
    assert.strictEqual(empty.perClass[1]!.accuracy, null)
  })

  it("expected calibration error over 15 equal-width bins", () => {
    // confidences 0.95 (right), 0.95 (wrong), 0.5 (right), 0.7 (right), 0.7 (wrong)
    const conf = [0.95, 0.95, 0.5, 0.7, 0.7]
    const correct = [true, false, true, true, false]
    // bins (b/15, (b+1)/15]: 0.95 → 14, 0.5 → 7, 0.7 → 10
    const want = (2 / 5) * Math.abs(0.5 - 0.95) + (1 / 5) * Math.abs(1 - 0.5) + (2 / 5) * Math.abs(0.5 - 0.7)
    expect(Metrics.expectedCalibrationError(conf, correct)).toBeCloseTo(want, 12)
    // a bin edge belongs to the lower bin: 7/15 exactly sits in bin 6 with 0.45
    expect(Metrics.expectedCalibrationError([7 / 15, 0.45], [true, true])).toBeCloseTo(1 - (7 / 15 + 0.45) / 2, 12)
    assert.strictEqual(Metrics.expectedCalibrationError([], []), 0)
    // perfectly calibrated: every sample at confidence 1 and right
    assert.strictEqual(Metrics.expectedCalibrationError([1, 1], [true, true]), 0)
  })

  it("confidences are softmax maxima, stable for large logits", () => {
    const p = Metrics.predictions([1000, 0, 999, 0], [0, 0], 2)
    expect(p.confidence[0]).toBeCloseTo(1, 12)
    expect(p.loss[0]).toBeCloseTo(0, 12)
    expect(p.confidence[1]).toBeCloseTo(1 / (1 + Math.exp(-999)), 12)
    assert.deepStrictEqual(Array.from(p.predicted), [0, 0])
    expect(() => Metrics.predictions([1, 2, 3], [0], 2)).toThrow(RangeError)
  })
})
