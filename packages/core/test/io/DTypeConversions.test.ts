/**
 * The f16/bf16 converters of tensor/DType.ts against the bits PyTorch 1.13 computed
 * (fixtures/dtype/*.bin, written by make_fixtures.py): every one of the 65,536 half and bfloat16
 * patterns widened to f32, and 40,000 f32 patterns (random, ties, subnormals, overflow, NaN
 * payloads) narrowed. NaNs compare as NaN: torch itself gives different NaN bits on its scalar
 * and vectorised paths (bf16 NaN is 0x7fc0 or 0xffff), so no NaN bit pattern is "the" answer,
 * and a NaN's payload is not reliably kept by a JS number anyway.
 */
import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import { bf16BitsToFloat, type DType, f16BitsToFloat, float32ToBF16Bits, float32ToF16Bits, fromNumbers, toFloat32, toFloat64 } from "../../src/tensor/DType.ts"
import { fixture } from "./helpers.ts"

const table = (name: string) => {
  const b = fs.readFileSync(fixture("dtype", name))
  return new DataView(b.buffer, b.byteOffset, b.byteLength)
}
const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)
const bitsOf = (x: number) => ((f32[0] = x), u32[0]!)
const valueOf = (bits: number) => ((u32[0] = bits), f32[0]!)
const isNaN16 = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0
const isNaNBf = (b: number) => (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0

describe("dtype conversions match PyTorch", () => {
  it("widens all 65,536 float16 patterns to the float32 torch computes", () => {
    const torch = table("f16_to_f32.bin")
    const bytes = new Uint8Array(65536 * 2)
    const dv = new DataView(bytes.buffer)
    for (let h = 0; h < 65536; h++) dv.setUint16(h * 2, h, true)
    const bulk = toFloat32(bytes, "F16")
    let mismatches = 0
    for (let h = 0; h < 65536; h++) {
      const want = torch.getUint32(h * 4, true)
      const scalar = bitsOf(f16BitsToFloat(h))
      if (isNaN16(h) ? !Number.isNaN(bulk[h]) || !Number.isNaN(valueOf(want)) : scalar !== want || bitsOf(bulk[h]!) !== want) mismatches++
    }
    expect(mismatches).toBe(0)
  })

  it("widens all 65,536 bfloat16 patterns to the float32 torch computes, bit for bit (NaN as NaN)", () => {
    // A NaN's payload does not survive a trip through a JS number reliably (V8 may canonicalise
    // it once the code is optimised), so NaN patterns are compared as NaN.
    const torch = table("bf16_to_f32.bin")
    let mismatches = 0
    for (let b = 0; b < 65536; b++) {
      const want = torch.getUint32(b * 4, true)
      const got = bf16BitsToFloat(b)
      if (isNaNBf(b) ? !Number.isNaN(got) || !Number.isNaN(valueOf(want)) : bitsOf(got) !== want) mismatches++
    }
    expect(mismatches).toBe(0)
  })

  it("narrows 40,000 float32 patterns to the float16 and bfloat16 torch computes (ties to even, subnormals, overflow)", () => {
    const t = table("f32_to_f16_bf16.bin")
    const n = t.getUint32(0, true)
    expect(n).toBeGreaterThan(40_000)
    const values = new Float32Array(n)
    for (let i = 0; i < n; i++) values[i] = valueOf(t.getUint32(4 + 4 * i, true))
    const half = new DataView(fromNumbers(values, "F16").buffer)
    const bf = new DataView(fromNumbers(values, "BF16").buffer)
    const problems: Array<string> = []
    for (let i = 0; i < n && problems.length < 5; i++) {
      const x = values[i]!
      const wantHalf = t.getUint16(4 + 4 * n + 2 * i, true)
      const wantBf = t.getUint16(4 + 6 * n + 2 * i, true)
      const gotHalf = [float32ToF16Bits(x), half.getUint16(2 * i, true)]
      const gotBf = [float32ToBF16Bits(x), bf.getUint16(2 * i, true)]
      const okHalf = Number.isNaN(x) ? gotHalf.every(isNaN16) && isNaN16(wantHalf) : gotHalf.every((g) => g === wantHalf)
      const okBf = Number.isNaN(x) ? gotBf.every(isNaNBf) && isNaNBf(wantBf) : gotBf.every((g) => g === wantBf)
      if (!okHalf || !okBf) problems.push(`0x${bitsOf(x).toString(16)}: f16 ${gotHalf} vs torch ${wantHalf}, bf16 ${gotBf} vs torch ${wantBf}`)
    }
    expect(problems).toEqual([])
  })

  it("rounds float64 to float16/bfloat16 once (numpy and exact rationals), where torch rounds twice", () => {
    const t = table("f64_to_f16_bf16.bin")
    const n = t.getUint32(0, true)
    const doubles = new Float64Array(n)
    for (let i = 0; i < n; i++) doubles[i] = t.getFloat64(4 + 8 * i, true)
    const half = new DataView(fromNumbers(doubles, "F16").buffer)
    const bf = new DataView(fromNumbers(doubles, "BF16").buffer)
    let halfMismatches = 0
    let bfMismatches = 0
    let torchDoubleRounded = 0
    for (let i = 0; i < n; i++) {
      if (half.getUint16(2 * i, true) !== t.getUint16(4 + 8 * n + 2 * i, true)) halfMismatches++
      if (bf.getUint16(2 * i, true) !== t.getUint16(4 + 10 * n + 2 * i, true)) bfMismatches++
      if (t.getUint16(4 + 12 * n + 2 * i, true) !== t.getUint16(4 + 8 * n + 2 * i, true)) torchDoubleRounded++
    }
    expect(halfMismatches).toBe(0)
    expect(bfMismatches).toBe(0)
    // The cases sit on and next to ties, where float64 → float32 → float16 differs from one rounding.
    expect(torchDoubleRounded).toBeGreaterThan(1000)
  })
})

describe("bulk conversions at any byte offset", () => {
  // The bulk paths read through typed-array views; an odd offset goes through an aligned copy.
  const at = (payload: Uint8Array, offset: number): Uint8Array<ArrayBuffer> => {
    const buffer = new Uint8Array(payload.byteLength + offset + 3)
    buffer.set(payload, offset)
    return buffer.subarray(offset, offset + payload.byteLength)
  }
  const allPatterns = () => {
    const bytes = new Uint8Array(65536 * 2)
    const dv = new DataView(bytes.buffer)
    for (let h = 0; h < 65536; h++) dv.setUint16(h * 2, h, true)
    return bytes
  }
  const sameNumber = (a: number, b: number) => (Number.isNaN(a) ? Number.isNaN(b) : Object.is(a, b))

  it("widens every float16 and bfloat16 pattern at offsets 0–3, to float32 and float64, as the scalar converters", () => {
    for (const offset of [0, 1, 2, 3]) {
      const bytes = at(allPatterns(), offset)
      for (const [dtype, scalar] of [["F16", f16BitsToFloat], ["BF16", bf16BitsToFloat]] as const) {
        const f32s = toFloat32(bytes, dtype)
        const f64s = toFloat64(bytes, dtype)
        let mismatches = 0
        for (let h = 0; h < 65536; h++) if (!sameNumber(f32s[h]!, scalar(h)) || !sameNumber(f64s[h]!, scalar(h))) mismatches++
        expect(mismatches, `${dtype} at offset ${offset}`).toBe(0)
      }
    }
  })

  it("decodes F64, F32, I64, I32, I16, I8 and U8 at unaligned offsets as a DataView reads them", () => {
    const raw = new Uint8Array(8 * 64)
    for (let i = 0; i < raw.length; i++) raw[i] = (i * 73 + 11) & 0xff
    const dv = new DataView(raw.buffer)
    const readers: ReadonlyArray<readonly [DType, number, (i: number) => number]> = [
      ["F64", 8, (i) => dv.getFloat64(i * 8, true)],
      ["F32", 4, (i) => dv.getFloat32(i * 4, true)],
      ["I64", 8, (i) => Number(dv.getBigInt64(i * 8, true))],
      ["I32", 4, (i) => dv.getInt32(i * 4, true)],
      ["I16", 2, (i) => dv.getInt16(i * 2, true)],
      ["I8", 1, (i) => dv.getInt8(i)],
      ["U8", 1, (i) => dv.getUint8(i)]
    ]
    for (const offset of [0, 1, 3, 5]) {
      const bytes = at(raw, offset)
      for (const [dtype, size, read] of readers) {
        const got = toFloat64(bytes, dtype)
        expect(got.length).toBe(raw.length / size)
        for (let i = 0; i < got.length; i++) expect(sameNumber(got[i]!, read(i)), `${dtype} #${i} at offset ${offset}`).toBe(true)
        const got32 = toFloat32(bytes, dtype)
        for (let i = 0; i < got32.length; i++) expect(sameNumber(got32[i]!, Math.fround(read(i))), `${dtype} #${i} at offset ${offset} (f32)`).toBe(true)
      }
    }
  })

  it("narrows a Float32Array view at an offset exactly as the scalar converters, and float64 values once", () => {
    const t = table("f32_to_f16_bf16.bin")
    const n = t.getUint32(0, true)
    const backing = new Float32Array(n + 3)
    for (let i = 0; i < n; i++) backing[i + 3] = valueOf(t.getUint32(4 + 4 * i, true))
    const values = backing.subarray(3)
    const half = new DataView(fromNumbers(values, "F16").buffer)
    const bf = new DataView(fromNumbers(values, "BF16").buffer)
    let mismatches = 0
    for (let i = 0; i < n; i++) {
      const x = values[i]!
      const h = half.getUint16(2 * i, true), b = bf.getUint16(2 * i, true)
      if (Number.isNaN(x) ? !isNaN16(h) || !isNaNBf(b) : h !== float32ToF16Bits(x) || b !== float32ToBF16Bits(x)) mismatches++
    }
    expect(mismatches).toBe(0)
  })
})
