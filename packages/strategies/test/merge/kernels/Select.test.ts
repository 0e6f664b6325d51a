import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as Select from "../../../src/merge/kernels/Select.ts"
import { normal, rng } from "./helpers.ts"

/** Ranks by sorting: |float32(x − b)| descending, ties by index ascending. */
const sortedOrder = (x: Float32Array, b: Float32Array): Array<number> => {
  const mag = Array.from(x, (v, j) => Math.abs(Math.fround(v - b[j]!)))
  return mag.map((_, j) => j).sort((i, j) => mag[j]! - mag[i]! || i - j)
}

const keyOf = (x: Float32Array, b: Float32Array, j: number) => {
  const f = new Float32Array([x[j]! - b[j]!])
  return new Uint32Array(f.buffer)[0]! & 0x7fffffff
}

/** Values with many exact ties and both zero signs. */
const tied = (seed: number, n: number): Float32Array => {
  const r = rng(seed)
  return Float32Array.from({ length: n }, () => (Math.floor(r() * 9) - 4) * 0.5 * (r() < 0.1 ? -0 : 1))
}

describe("magnitude selection", () => {
  it("the cut at every rank agrees with a full sort, ties broken by index", () => {
    for (const [x, b] of [[normal(1, 777), normal(2, 777)], [tied(3, 500), new Float32Array(500)]] as const) {
      const order = sortedOrder(x, b)
      const ranks = [0, 1, 2, 17, 100, 250, 499, x.length - 1, x.length]
      const cuts = Select.cuts(x, b, ranks)
      for (const [c, r] of ranks.entries()) {
        const above = new Set(order.slice(0, r))
        for (let j = 0; j < x.length; j++) expect(Select.isAbove(keyOf(x, b, j), j, cuts[c]!)).toBe(above.has(j))
      }
    }
  })

  it("top-k keeps exactly k elements on random data with ties (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 0, max: 1 << 30 }), fc.double({ min: 0, max: 1, noNaN: true }), (n, seed, density) => {
        const x = seed % 2 === 0 ? normal(seed, n) : tied(seed, n)
        const b = new Float32Array(n)
        const k = Math.floor(density * n)
        const [cut] = Select.cuts(x, b, [k])
        let kept = 0
        for (let j = 0; j < n; j++) if (Select.isAbove(keyOf(x, b, j), j, cut!)) kept++
        expect(kept).toBe(k)
      }),
      { numRuns: 60 }
    )
  })

  it("uses tensor indices when the arrays are a window of the tensor", () => {
    const x = tied(9, 300)
    const b = new Float32Array(300)
    const [plain] = Select.cuts(x, b, [120])
    const [shifted] = Select.cuts(x, b, [120], 1000)
    // An index of 0 means "no equal magnitude ranks above the cut", wherever the window is.
    expect(plain!.index).toBeGreaterThan(0)
    expect(shifted).toEqual({ bits: plain!.bits, index: plain!.index + 1000 })
  })

  it("counting passes add up across ranges", () => {
    const x = normal(4, 10000), b = normal(5, 10000)
    const whole = new Uint32Array(Select.HIGH_BUCKETS)
    Select.countHigh(x, b, 0, 10000, whole)
    const split = new Uint32Array(Select.HIGH_BUCKETS)
    Select.countHigh(x, b, 0, 3333, split)
    Select.countHigh(x, b, 3333, 10000, split)
    expect(split).toEqual(whole)
    expect(whole.reduce((s, c) => s + c, 0)).toBe(10000)
  })
})
