// Radix64.select against Float64Array.prototype.sort: every rank of values with −0/+0, NaN,
// ±Infinity, subnormals and many repeats, on one range and on uneven ranges (the counts add up).
import { describe, expect, it } from "vitest"
import { runInThread } from "../../../src/merge/kernels/Passes.ts"
import type { Range } from "../../../src/merge/kernels/Pool.ts"
import * as Radix64 from "../../../src/merge/kernels/Radix64.ts"
import { rng } from "./helpers.ts"

const r = rng(9)
const specials = [0, -0, Number.NaN, Infinity, -Infinity, 5e-324, -5e-324, 1, -1, 2 ** -1022, Number.MAX_VALUE, -Number.MAX_VALUE]
const values = Float64Array.from({ length: 3001 }, (_, j) =>
  j % 7 === 0 ? specials[j % specials.length]! : j % 3 === 0 ? Math.round(r() * 8) - 4 : (r() - 0.5) * 10 ** Math.round(r() * 40 - 20))

const step = (a: Radix64.CountArgs, start: number, end: number): Radix64.Counts => {
  const counts = Radix64.emptyCounts(a.targets.length)
  const chunk = Radix64.scratch()
  for (let j0 = start; j0 < end; j0 += Radix64.CHUNK) {
    const m = Math.min(Radix64.CHUNK, end - j0)
    chunk.values.set(values.subarray(j0, j0 + m))
    Radix64.count(chunk, m, a, counts)
  }
  return counts
}

describe("Radix64.select", () => {
  const sorted = values.slice().sort()
  const ranks = Array.from({ length: values.length }, (_, k) => k).filter((k) => k % 37 === 0 || k > values.length - 5 || k < 5)
  for (const ranges of [[{ start: 0, end: values.length }], [{ start: 0, end: 1024 }, { start: 1024, end: 1100 }, { start: 1100, end: values.length }]] as Array<Array<Range>>) {
    it(`finds the sorted values at every rank asked, with counts below and equal (${ranges.length} ranges)`, () => {
      const { found, nonzero, nan } = runInThread(Radix64.select(ranges, values.length, (c) => c, () => ranks), step)
      expect(nonzero).toBe(values.filter((v) => v !== 0).length)
      expect(nan).toBe(values.filter((v) => Number.isNaN(v)).length)
      for (const f of found) {
        const want = sorted[f.rank]!
        expect(Object.is(f.value, want), `rank ${f.rank}: ${f.value} vs ${want}`).toBe(true)
        const same = (v: number) => Object.is(v, want)
        expect(f.below).toBe(sorted.findIndex(same))
        expect(f.equal).toEqual(ranges.map((g) => values.subarray(g.start, g.end).filter(same).length))
      }
      expect(found.map((f) => f.rank)).toEqual(ranks)
    })
  }
})
