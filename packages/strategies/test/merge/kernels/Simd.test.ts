import { describe, expect, it } from "vitest"
import * as Arena from "../../../src/merge/kernels/Arena.ts"
import * as Simd from "../../../src/merge/kernels/Simd.ts"
import { weightedSum } from "../../../src/merge/kernels/WeightedSum.ts"
import { expectSameBits, normal } from "./helpers.ts"

describe("SIMD weighted sum", () => {
  it("is supported here", () => expect(Simd.isSupported()).toBe(true))

  it("finds NaN and ±Inf in any lane, vector or tail, within the asked range only; float32's largest finite is finite", () => {
    const arena = Arena.make({ maxBytes: 1 << 22 })
    const simd = Simd.make(arena.memory, arena.owns)
    const x = arena.alloc(1003)!
    x.set(normal(5, 1003, 1e30))
    x[10] = 3.4028234663852886e38
    x[11] = -3.4028234663852886e38
    expect(simd.hasNonFinite(x, 0, 1003)).toBe(false)
    for (const at of [0, 1, 2, 3, 500, 999, 1000, 1002]) {
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
        const kept = x[at]!
        x[at] = bad
        expect(simd.hasNonFinite(x, 0, 1003), `${bad} at ${at}`).toBe(true)
        expect(simd.hasNonFinite(x, at, at + 1)).toBe(true)
        expect(simd.hasNonFinite(x, at + 1, 1003)).toBe(false)
        x[at] = kept
      }
    }
    expect(simd.hasNonFinite(new Float32Array(8), 0, 8)).toBeUndefined() // not in the arena's memory
  })

  it("gives the JavaScript loop's bits for 1–8 inputs, any range (unaligned, with tails), across arena growth", () => {
    const arena = Arena.make({ initialBytes: 65536, maxBytes: 1 << 24 })
    const simd = Simd.make(arena.memory, arena.owns)
    const n = 10007
    const inputs = Array.from({ length: 8 }, (_, i) => {
      const a = arena.alloc(n)!
      a.set(normal(i + 1, n, 1 + i))
      return a
    })
    const coefficients = [0.3, -1.7, 0.1, 2.5, 1e-3, 0.77, -0.5, 1 / 3]
    for (let count = 1; count <= 8; count++) {
      for (const [start, end] of [[0, n], [3, n - 2], [1, 6], [5, 5]] as const) {
        const js = new Float32Array(n)
        const out = arena.alloc(n)!
        weightedSum(js, inputs.slice(0, count), coefficients, start, end)
        expect(simd.weightedSum(out, inputs.slice(0, count), coefficients, start, end)).toBe(true)
        expectSameBits(out, js)
        arena.free(out)
      }
    }
  })

  it("declines arrays outside its memory and more than 8 inputs", () => {
    const arena = Arena.make({ maxBytes: 1 << 20 })
    const simd = Simd.make(arena.memory, arena.owns)
    const a = arena.alloc(16)!
    expect(simd.weightedSum(new Float32Array(16), [a], [1], 0, 16)).toBe(false)
    expect(simd.weightedSum(a, Array(9).fill(a), Array(9).fill(1), 0, 16)).toBe(false)
  })
})

describe("arena", () => {
  it("allocates zeroed, aligned, disjoint arrays; frees, coalesces and grows", () => {
    const arena = Arena.make({ initialBytes: 65536, maxBytes: 1 << 22 })
    const a = arena.alloc(1000)!, b = arena.alloc(3)!, c = arena.alloc(100000)!
    for (const x of [a, b, c]) {
      expect(x.byteOffset % 64).toBe(0)
      expect(x.every((v) => v === 0)).toBe(true)
      expect(arena.owns(x)).toBe(true)
    }
    a.fill(1)
    b.fill(2)
    c.fill(3)
    expect(a.every((v) => v === 1) && b.every((v) => v === 2)).toBe(true)
    const used = arena.used()
    arena.free(b)
    arena.free(a)
    expect(arena.used()).toBe(used - 4032 - 64)
    const d = arena.alloc(1010)!
    expect(d.byteOffset).toBe(0) // a's and b's blocks coalesced
    expect(arena.alloc(1 << 22)).toBeUndefined()
    expect(arena.owns(new Float32Array(4))).toBe(false)
  })
})
