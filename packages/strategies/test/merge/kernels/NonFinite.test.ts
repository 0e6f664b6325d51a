import { describe, expect, it } from "vitest"
import * as NonFinite from "../../../src/merge/kernels/NonFinite.ts"

describe("non-finite detection", () => {
  it("finds NaN and ±Inf, never finite extremes", () => {
    const x = new Float32Array([0, -0, 3.4e38, -3.4e38, 1e-45, 1, 2])
    expect(NonFinite.firstNonFinite(x)).toBe(-1)
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      const y = Float32Array.from(x)
      y[4] = bad
      expect(NonFinite.firstNonFinite(y)).toBe(4)
      expect(NonFinite.firstNonFinite(y, 5)).toBe(-1)
    }
  })

  it("reports the first tensor, element, value and count; the error names them", () => {
    const ok = new Float32Array(10)
    const bad = new Float32Array(10)
    bad[7] = Number.NaN
    bad[9] = Number.POSITIVE_INFINITY
    const report = NonFinite.find([
      { tensor: "a (input 0)", values: ok },
      { tensor: "b (input 1)", values: bad, offset: 100 }
    ])
    expect(report?.tensor).toBe("b (input 1)")
    expect(report?.index).toBe(107)
    expect(report?.value).toBeNaN()
    expect(report?.count).toBe(2)
    expect(NonFinite.find([{ tensor: "a", values: ok }])).toBeUndefined()
    const e = new NonFinite.NonFiniteTensor({ tensor: "b", index: 107, value: Number.NaN, count: 2, role: "input" })
    expect(e.message).toContain('tensor "b"')
    expect(e.message).toContain("107")
  })
})
