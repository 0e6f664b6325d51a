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

  it("hands out raw byte slots, 64-byte aligned and zero-filled, that share the allocator with float arrays", () => {
    const arena = Arena.make({ maxBytes: 4 << 20, initialBytes: 1 << 16 })
    const f = arena.alloc(10)!
    const bytes = arena.allocBytes(2 * 1001)! // a bf16 tensor of 1001 elements
    expect(bytes.byteLength).toBe(2002)
    expect(bytes.byteOffset % 64).toBe(0)
    expect(bytes.byteOffset).toBeGreaterThanOrEqual(f.byteOffset + 64)
    expect(bytes.every((b) => b === 0)).toBe(true)
    bytes.fill(0xab)
    expect(arena.owns(bytes) && arena.owns(new DataView(bytes.buffer, 8, 8)) && !arena.owns(new Uint8Array(8))).toBe(true)
    expect(arena.used()).toBe(64 + Math.ceil(2002 / 64) * 64)
    arena.free(bytes)
    const again = arena.allocBytes(100)!
    expect(again.byteOffset).toBe(bytes.byteOffset) // first fit: the freed slot, cleared
    expect(again.every((b) => b === 0)).toBe(true)
    expect(arena.allocBytes(8 << 20)).toBeUndefined() // beyond maxBytes
  })
})
