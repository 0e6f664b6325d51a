import { DType } from "@crucible/core"
import { Effect, Exit, Scope } from "effect"
import { describe, expect, it } from "vitest"
import * as Arena from "../../../src/merge/kernels/Arena.ts"
import * as Ops from "../../../src/merge/kernels/Ops.ts"
import * as Packed from "../../../src/merge/kernels/Packed.ts"
import * as Pool from "../../../src/merge/kernels/Pool.ts"
import { rng } from "./helpers.ts"

const DTYPES: ReadonlyArray<Packed.PackedDType> = ["F32", "BF16", "F16"]
const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)
const bitsToFloat = (bits: number) => ((u32[0] = bits), f32[0]!)
const floatToBits = (x: number) => ((f32[0] = x), u32[0]!)

// The scalar converters of core's DType are the reference for every element.
const decodeScalar = (dtype: Packed.PackedDType, bits: number): number =>
  dtype === "F32" ? bitsToFloat(bits) : dtype === "BF16" ? DType.bf16BitsToFloat(bits) : DType.f16BitsToFloat(bits)
const encodeScalar = (dtype: Packed.PackedDType, x: number): number =>
  dtype === "F32" ? floatToBits(x) : dtype === "BF16" ? DType.float32ToBF16Bits(x) : DType.float32ToF16Bits(x)
const read = (bytes: Uint8Array, dtype: Packed.PackedDType, j: number): number => {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  return dtype === "F32" ? dv.getUint32(4 * j, true) : dv.getUint16(2 * j, true)
}
const write = (bytes: Uint8Array, dtype: Packed.PackedDType, j: number, bits: number): void => {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (dtype === "F32") dv.setUint32(4 * j, bits >>> 0, true)
  else dv.setUint16(2 * j, bits, true)
}
/** Element j of two arrays of `dtype` bits agrees: the same bits, or both NaN. */
const mismatches = (dtype: Packed.PackedDType, got: Uint8Array, want: (j: number) => number, start: number, end: number): Array<string> => {
  const bad: Array<string> = []
  for (let j = start; j < end && bad.length < 5; j++) {
    const g = read(got, dtype, j), w = want(j)
    const same = Number.isNaN(decodeScalar(dtype, w)) ? Number.isNaN(decodeScalar(dtype, g)) : g === w
    if (!same) bad.push(`#${j}: 0x${g.toString(16)} want 0x${w.toString(16)}`)
  }
  return bad
}

// Bit patterns that stress each input type: signed zeros, subnormals, the largest finite, ±Inf,
// NaNs, and float32 values on the bf16/f16 rounding ties and f16 overflow boundary.
const SPECIALS: Readonly<Record<Packed.PackedDType, ReadonlyArray<number>>> = {
  F32: [0, 0x80000000, 1, 0x807fffff, 0x3f808000, 0x3f818000, 0x3f801000, 0x3f803000, 0x477fefff, 0x477ff000, 0x477fe000, 0x33000000, 0x33000001,
    0x387fc000, 0x38800000, 0x7f7fffff, 0xff7fffff, 0x7f7f8000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001],
  BF16: [0, 0x8000, 0x0001, 0x807f, 0x7f7f, 0xff7f, 0x7f80, 0xff80, 0x7fc0, 0x7f81, 0x3c01, 0x4780],
  F16: [0, 0x8000, 0x0001, 0x83ff, 0x0400, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0x7c01, 0x3c01]
}

/** `count` elements of `dtype`: mostly random finite values across magnitudes, with specials. */
const inputBits = (dtype: Packed.PackedDType, count: number, seed: number, specials: boolean): Array<number> => {
  const r = rng(seed)
  const maxExp = dtype === "F16" ? 14 : 60
  return Array.from({ length: count }, () => {
    if (specials && r() < 0.2) return SPECIALS[dtype][Math.floor(r() * SPECIALS[dtype].length)]!
    const value = (r() - 0.5) * 2 ** Math.floor((r() - 0.5) * 2 * maxExp)
    return encodeScalar(dtype, value)
  })
}

const arena = Arena.make({ maxBytes: 1 << 26 })
const packed = Packed.make(arena.memory, arena.owns)
/** An arena byte array for `count` elements, `shift` bytes past a 64-byte boundary. */
const slot = (dtype: Packed.PackedDType, count: number, shift = 0): Uint8Array => {
  const bytes = count * Packed.bytesPer(dtype)
  return arena.allocBytes(bytes + shift)!.subarray(shift, shift + bytes)
}

describe("packed weighted sum", () => {
  it("is supported here, and refuses arrays outside its memory, 0 or 9 inputs", () => {
    expect(Packed.isSupported()).toBe(true)
    const x = slot("BF16", 16)
    expect(packed.weightedSum(new Uint8Array(32), "BF16", [x], "BF16", [1], 0, 16)).toBe(false)
    expect(packed.weightedSum(x, "BF16", [new Uint8Array(32)], "BF16", [1], 0, 16)).toBe(false)
    expect(packed.weightedSum(x, "BF16", [], "BF16", [], 0, 16)).toBe(false)
    expect(packed.weightedSum(x, "BF16", Array(9).fill(x), "BF16", Array(9).fill(0.1), 0, 16)).toBe(false)
    expect(Packed.isPacked("BF16") && Packed.isPacked("F32") && !Packed.isPacked("F64")).toBe(true)
  })

  const n = 203
  const ranges = [[0, n], [3, n - 2], [1, 6], [5, 5], [9, 9 + 17]] as const
  const coefficientSets = [[1, 1, 1, 1, 1, 1, 1, 1], [0.5, -2, 0.25, 1, 4, -0.5, 2, 1], [0.3, -1.7, 0.1, 2.5, 1e-3, 0.77, -0.5, 1 / 3]]
  for (const inDtype of DTYPES) {
    for (const outDtype of DTYPES) {
      it(`${inDtype} → ${outDtype}, 1/2/3/8 inputs, any range: the JS reference's bits and a float64 sum rounded by the scalar converters`, () => {
        for (const count of [1, 2, 3, 8]) {
          const bits = Array.from({ length: count }, (_, i) => inputBits(inDtype, n, 1000 * count + i, true))
          const inputs = bits.map((b, i) => {
            const x = slot(inDtype, n, i % 3 === 1 ? 2 : 0) // some inputs off a 4-byte boundary
            b.forEach((v, j) => write(x, inDtype, j, v))
            return x
          })
          for (const coefficients of coefficientSets) {
            const c = coefficients.slice(0, count)
            // float64 sum, left to right, rounded once to float32, then encoded by the scalar converter.
            const want = (j: number) => {
              let sum = 0
              for (let i = 0; i < count; i++) sum = i === 0 ? c[0]! * decodeScalar(inDtype, bits[0]![j]!) : sum + c[i]! * decodeScalar(inDtype, bits[i]![j]!)
              return encodeScalar(outDtype, Math.fround(sum))
            }
            for (const [start, end] of ranges) {
              const simd = slot(outDtype, n, 2)
              const js = new Uint8Array(n * Packed.bytesPer(outDtype))
              expect(packed.weightedSum(simd, outDtype, inputs, inDtype, c, start, end)).toBe(true)
              Packed.weightedSumJs(js, outDtype, inputs, inDtype, c, start, end)
              const label = `${count} inputs, c ${c}, [${start}, ${end})`
              expect(mismatches(outDtype, simd, (j) => read(js, outDtype, j), start, end), `SIMD vs JS, ${label}`).toEqual([])
              expect(mismatches(outDtype, simd, want, start, end), `SIMD vs float64, ${label}`).toEqual([])
              expect(simd.subarray(0, start * Packed.bytesPer(outDtype)).every((b) => b === 0), `before the range, ${label}`).toBe(true)
              expect(simd.subarray(end * Packed.bytesPer(outDtype)).every((b) => b === 0), `after the range, ${label}`).toBe(true)
              arena.free(simd)
            }
          }
          inputs.forEach((x) => arena.free(x))
        }
      })
    }
  }

  it("rounds ties to even, overflows to Inf and keeps NaN on every output (one input, coefficient 1)", () => {
    const cases: ReadonlyArray<readonly [number, Packed.PackedDType, number]> = [
      [0x3f808000, "BF16", 0x3f80], [0x3f818000, "BF16", 0x3f82], [0x7f7f8000, "BF16", 0x7f80], [0x7fc00000, "BF16", 0x7fc0],
      [0x3f801000, "F16", 0x3c00], [0x3f803000, "F16", 0x3c02], [0x477ff000, "F16", 0x7c00], [0x477fefff, "F16", 0x7bff],
      [0x33000000, "F16", 0x0000], [0x33000001, "F16", 0x0001], [0x387fc000, "F16", 0x03ff], [0xc7800000, "F16", 0xfc00]
    ]
    for (const [input, outDtype, want] of cases) {
      const x = slot("F32", 8)
      for (let j = 0; j < 8; j++) write(x, "F32", j, input)
      const out = slot(outDtype, 8)
      packed.weightedSum(out, outDtype, [x], "F32", [1], 0, 8)
      expect(mismatches(outDtype, out, () => want, 0, 8), `0x${input.toString(16)} → ${outDtype}`).toEqual([])
    }
  })
})

describe("packed widen, narrow and NaN/Inf scan", () => {
  const all = (dtype: "BF16" | "F16") => {
    const x = slot(dtype, 65536)
    for (let h = 0; h < 65536; h++) write(x, dtype, h, h)
    return x
  }
  const f32s = (count: number) => {
    const bytes = arena.allocBytes(count * 4)!
    return new Float32Array(bytes.buffer, bytes.byteOffset, count)
  }

  for (const dtype of ["BF16", "F16"] as const) {
    it(`widens all 65,536 ${dtype} patterns as the scalar converter, and narrows them back`, () => {
      const x = all(dtype)
      const wide = f32s(65536)
      expect(packed.widen(wide, x, dtype, 0, 65536)).toBe(true)
      const bad: Array<number> = []
      for (let h = 0; h < 65536; h++) {
        const want = decodeScalar(dtype, h)
        if (Number.isNaN(want) ? !Number.isNaN(wide[h]) : floatToBits(wide[h]!) !== floatToBits(want)) bad.push(h)
      }
      expect(bad.slice(0, 5)).toEqual([])
      const back = slot(dtype, 65536)
      expect(packed.narrow(back, dtype, wide, 3, 65533)).toBe(true)
      expect(mismatches(dtype, back, (h) => h, 3, 65533)).toEqual([])
    })
  }

  it("narrows 200,000 random float32 patterns, ties and edges to bf16 and f16 as the scalar converters (unaligned ranges)", () => {
    const r = rng(7)
    const count = 200_003
    const x = f32s(count)
    const bits = new Uint32Array(x.buffer, x.byteOffset, count)
    for (let j = 0; j < count; j++) {
      const u = Math.floor(r() * 2 ** 32)
      // a third random everywhere, a third near f16's range, a third on rounding ties
      bits[j] = j % 3 === 0 ? u : j % 3 === 1 ? (u & 0x807fffff) | ((100 + (u % 50)) << 23) : (u & 0xffff0000) | (j % 2 === 0 ? 0x8000 : 0x1000)
    }
    for (const dtype of ["BF16", "F16", "F32"] as const) {
      const out = slot(dtype, count)
      expect(packed.narrow(out, dtype, x, 1, count - 1)).toBe(true)
      expect(mismatches(dtype, out, (j) => encodeScalar(dtype, x[j]!), 1, count - 1), dtype).toEqual([])
    }
  })

  for (const dtype of DTYPES) {
    it(`finds NaN and ±Inf in ${dtype} in any position, vector or tail, within the asked range only`, () => {
      const n = 1003
      const x = slot(dtype, n, 2)
      inputBits(dtype, n, 5, false).forEach((v, j) => write(x, dtype, j, v))
      const specials = SPECIALS[dtype].filter((b) => !Number.isFinite(decodeScalar(dtype, b)))
      const largest = dtype === "F32" ? 0x7f7fffff : dtype === "BF16" ? 0x7f7f : 0x7bff
      write(x, dtype, 10, largest)
      expect(packed.hasNonFinite(x, dtype, 0, n)).toBe(false)
      expect(Packed.hasNonFiniteJs(x, dtype, 0, n)).toBe(false)
      for (const at of [0, 1, 7, 8, 500, 999, 1000, 1002]) {
        const kept = read(x, dtype, at)
        for (const bad of specials) {
          write(x, dtype, at, bad)
          for (const [start, end, want] of [[0, n, true], [at, at + 1, true], [at + 1, n, false], [0, at, false]] as const) {
            expect(packed.hasNonFinite(x, dtype, start, end), `0x${bad.toString(16)} at ${at}, [${start}, ${end})`).toBe(want)
            expect(Packed.hasNonFiniteJs(x, dtype, start, end)).toBe(want)
          }
        }
        write(x, dtype, at, kept)
      }
      expect(packed.hasNonFinite(new Uint8Array(64), dtype, 0, 8)).toBeUndefined()
    })
  }
})

describe("packedSum through the pool", () => {
  it("gives the in-thread bytes for a range split across 2 workers, and packedNonFinite agrees", async () => {
    const n = 4 * 1024 + 77
    const inputs = [1, 2, 3].map((seed) => {
      const x = slot("BF16", n)
      inputBits("BF16", n, seed, false).forEach((v, j) => write(x, "BF16", j, v))
      return x
    })
    const args = { outDtype: "BF16", inputs, inDtype: "BF16", coefficients: [0.5, 0.3, 0.2] } as const
    const here = slot("BF16", n)
    Ops.run("packedSum", { ...args, out: here }, 0, n, { simd: undefined })
    const pooled = slot("BF16", n)
    const scope = Effect.runSync(Scope.make())
    try {
      const pool = await Effect.runPromise(Scope.provide(scope)(Pool.make({ workers: 2, arena, inlineBelow: 0 })))
      const ranges = pool.split(n, 1024)
      expect(ranges.length).toBe(2)
      await Effect.runPromise(pool.run("packedSum", { ...args, out: pooled }, ranges))
      expect(Buffer.from(pooled).equals(Buffer.from(here))).toBe(true)
      expect(await Effect.runPromise(pool.run("packedNonFinite", { x: pooled, dtype: "BF16" }, ranges))).toEqual([false, false])
      write(pooled, "BF16", n - 5, 0x7f80)
      expect(await Effect.runPromise(pool.run("packedNonFinite", { x: pooled, dtype: "BF16" }, ranges))).toEqual([false, true])
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  })
})
