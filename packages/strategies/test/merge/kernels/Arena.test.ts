// The arena hands out zero-filled arrays: fresh memory (never touched) and reused memory (filled).
import { describe, expect, it } from "vitest"
import * as Arena from "../../../src/merge/kernels/Arena.ts"

const allZero = (a: Float32Array) => a.every((x) => x === 0)

describe("Arena", () => {
  it("gives zero-filled arrays, whether the memory is fresh, reused after a free, or grown", () => {
    const arena = Arena.make({ maxBytes: 4 << 20, initialBytes: 1 << 16 })
    const a = arena.alloc(1000)!
    const b = arena.alloc(3000)!
    expect(allZero(a) && allZero(b)).toBe(true)
    a.fill(7)
    b.fill(9)
    arena.free(a)
    const c = arena.alloc(900)! // first fit: a's old place
    expect(c.byteOffset).toBe(a.byteOffset)
    expect(allZero(c)).toBe(true)
    arena.free(b)
    arena.free(c)
    const d = arena.alloc(500_000)! // beyond the initial memory: grown, and over b's dirty bytes
    expect(allZero(d)).toBe(true)
    expect(arena.owns(d) && arena.owns(a)).toBe(true)
    expect(arena.used()).toBe(Math.ceil((500_000 * 4) / 64) * 64)
  })
})
