import { assert, describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import * as Random from "../../src/backend/Random.ts"

const draw = (seed: number, n: number) => {
  const rng = Random.make(seed)
  return Array.from({ length: n }, () => rng.uint32())
}

describe("Random", () => {
  it("is deterministic per seed and differs between seeds", () => {
    assert.deepStrictEqual(draw(42, 100), draw(42, 100))
    expect(draw(42, 100)).not.toEqual(draw(43, 100))
    // pinned values: a change of generator would silently change every seeded result (inits, orders)
    assert.deepStrictEqual(draw(0, 3), [3663941251, 2916127658, 4237746679])
    assert.strictEqual(Random.derive(0, "init", "layers.0.weight"), 3067377791)
    expect(new Set(draw(0, 10_000)).size).toBeGreaterThan(9_990)
  })

  it("derives distinct, stable streams from labels", () => {
    assert.strictEqual(Random.derive(1, "shuffle", 3), Random.derive(1, "shuffle", 3))
    const seeds = new Set<number>()
    for (const label of ["init", "shuffle", "shift"]) for (let e = 0; e < 50; e++) seeds.add(Random.derive(7, label, e))
    assert.strictEqual(seeds.size, 150)
    expect(Random.derive(1, "3")).not.toBe(Random.derive(1, 3))
  })

  it("draws uniform floats in [0, 1) with the right mean and variance", () => {
    const rng = Random.make(5)
    const n = 200_000
    let sum = 0
    let sq = 0
    const bins = new Array<number>(10).fill(0)
    for (let i = 0; i < n; i++) {
      const u = rng.next()
      expect(u >= 0 && u < 1).toBe(true)
      sum += u
      sq += u * u
      bins[Math.floor(u * 10)]!++
    }
    expect(Math.abs(sum / n - 0.5)).toBeLessThan(0.005)
    expect(Math.abs(sq / n - (sum / n) ** 2 - 1 / 12)).toBeLessThan(0.002)
    // chi-square with 9 degrees of freedom: 99.9% quantile is 27.9
    const chi = bins.reduce((acc, b) => acc + (b - n / 10) ** 2 / (n / 10), 0)
    expect(chi).toBeLessThan(27.9)
  })

  it("draws integers in [0, n) without bias, and standard normals", () => {
    const rng = Random.make(9)
    const counts = new Array<number>(3).fill(0)
    for (let i = 0; i < 30_000; i++) counts[rng.int(3)]!++
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(400)
    let sum = 0
    let sq = 0
    for (let i = 0; i < 100_000; i++) {
      const z = rng.normal()
      sum += z
      sq += z * z
    }
    expect(Math.abs(sum / 100_000)).toBeLessThan(0.02)
    expect(Math.abs(sq / 100_000 - 1)).toBeLessThan(0.02)
    expect(() => rng.int(0)).toThrow(RangeError)
  })

  it("permutations are permutations, and every position is uniform", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }), fc.integer(), (n, seed) => {
        const p = Random.make(seed).permutation(n)
        assert.deepStrictEqual(Array.from(p).sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i))
      })
    )
    const first = new Array<number>(4).fill(0)
    for (let s = 0; s < 8_000; s++) first[Random.make(s).permutation(4)[0]!]!++
    for (const c of first) expect(Math.abs(c - 2_000)).toBeLessThan(200)
  })
})
