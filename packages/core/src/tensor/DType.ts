/**
 * Element types, named as safetensors names them, and exact conversions between their byte
 * encodings and JavaScript numbers. Conversions to f16/bf16 round to nearest, ties to even, as
 * PyTorch does; NaN, ±Inf and subnormals are preserved.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/** @category models */
export const DTypes = [
  "F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2",
  "I64", "I32", "I16", "I8", "U8", "BOOL"
] as const

/** @category models */
export type DType = (typeof DTypes)[number]

/** @category schemas */
export const DTypeSchema = Schema.Literals(DTypes)

/** Bytes per element. @category constants */
export const byteSize: Readonly<Record<DType, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1,
  I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1
}

/** Floating-point types, which merges may produce. @category predicates */
export const isFloat = (dtype: DType): boolean =>
  dtype === "F64" || dtype === "F32" || dtype === "F16" || dtype === "BF16" ||
  dtype === "F8_E4M3" || dtype === "F8_E5M2"

/** Dtypes a writer may emit (f8 is read-only: no rounding rule is agreed on for writing it). */
export const WritableDTypes = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"] as const
/** @category models */
export type WritableDType = (typeof WritableDTypes)[number]
/** @category schemas */
export const WritableDTypeSchema = Schema.Literals(WritableDTypes)

/** A writable dtype in a pipeline (`out_dtype: bfloat16`). @category schemas */
export const WritableDTypeName = Schema.String.pipe(
  Schema.check(Schema.makeFilter((s: string) => parseWritable(s) !== undefined || `"${s}" is not a dtype Crucible can write (use F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL or torch names like bfloat16)`))
)

/** Parses a dtype name that a writer can emit. */
export const parseWritable = (name: string): WritableDType | undefined => {
  const d = parse(name)
  return d !== undefined && (WritableDTypes as ReadonlyArray<string>).includes(d) ? (d as WritableDType) : undefined
}

/** PyTorch-style lower-case aliases accepted in pipelines (`out_dtype: bfloat16`). */
const aliases: Readonly<Record<string, DType>> = {
  float64: "F64", double: "F64", f64: "F64",
  float32: "F32", float: "F32", f32: "F32",
  float16: "F16", half: "F16", f16: "F16",
  bfloat16: "BF16", bf16: "BF16",
  int64: "I64", long: "I64", i64: "I64",
  int32: "I32", int: "I32", i32: "I32",
  int16: "I16", i16: "I16", int8: "I8", i8: "I8",
  uint8: "U8", u8: "U8", bool: "BOOL"
}

/** Parses `F32`, `float32`, `bfloat16`, … into a dtype; undefined when unknown. */
export const parse = (name: string): DType | undefined =>
  (DTypes as ReadonlyArray<string>).includes(name) ? (name as DType) : aliases[name.toLowerCase()]

/** A dtype in a pipeline: canonical names and PyTorch's aliases. @category schemas */
export const DTypeName = Schema.String.pipe(
  Schema.check(Schema.makeFilter((s: string) => parse(s) !== undefined || `unknown dtype "${s}" (use F32, F16, BF16, F64, float32, bfloat16, …)`))
)

// ---------------------------------------------------------------------------------------------
// Scalar bit conversions

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** The bits of a float16 for `x`, rounded to nearest even. */
export const float32ToF16Bits = (x: number): number => {
  f32[0] = x
  const bits = u32[0]!
  const sign = (bits >>> 16) & 0x8000
  const exp = (bits >>> 23) & 0xff
  let mant = bits & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0)
  // Re-bias from 127 to 15.
  let e = exp - 127 + 15
  if (e >= 0x1f) return sign | 0x7c00
  if (e <= 0) {
    if (e < -10) return sign // underflows to ±0 even after rounding
    mant |= 0x800000 // make the implicit bit explicit
    const shift = 14 - e
    const half = 1 << (shift - 1)
    const rest = mant & ((1 << shift) - 1)
    let out = mant >>> shift
    if (rest > half || (rest === half && (out & 1) === 1)) out += 1
    return sign | out
  }
  const rest = mant & 0x1fff
  let out = (e << 10) | (mant >>> 13)
  if (rest > 0x1000 || (rest === 0x1000 && (out & 1) === 1)) out += 1 // may carry into exponent: correct
  return sign | out
}

/** The float value of float16 bits. */
export const f16BitsToFloat = (h: number): number => {
  const sign = h & 0x8000 ? -1 : 1
  const exp = (h >>> 10) & 0x1f
  const mant = h & 0x3ff
  if (exp === 0) return sign * mant * 2 ** -24
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN
  return sign * (1 + mant / 1024) * 2 ** (exp - 15)
}

/** The bits of a bfloat16 for `x`, rounded to nearest even (NaN stays a quiet NaN). */
export const float32ToBF16Bits = (x: number): number => {
  f32[0] = x
  const bits = u32[0]!
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return ((bits >>> 16) | 0x40) & 0xffff
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1)
  return (rounded >>> 16) & 0xffff
}

/** The float value of bfloat16 bits. */
export const bf16BitsToFloat = (b: number): number => {
  u32[0] = b << 16
  return f32[0]!
}

/** float8 e4m3fn (no infinities; 0x7f/0xff are NaN), as PyTorch's float8_e4m3fn. */
export const f8e4m3BitsToFloat = (b: number): number => {
  const sign = b & 0x80 ? -1 : 1
  const exp = (b >>> 3) & 0xf
  const mant = b & 0x7
  if (exp === 0xf && mant === 0x7) return NaN
  if (exp === 0) return sign * mant * 2 ** -9
  return sign * (1 + mant / 8) * 2 ** (exp - 7)
}

/** float8 e5m2, IEEE-like, as PyTorch's float8_e5m2. */
export const f8e5m2BitsToFloat = (b: number): number => f16BitsToFloat(b << 8)

// ---------------------------------------------------------------------------------------------
// Whole-buffer conversions (little-endian, as every supported format stores them)
//
// The bulk paths read and write through typed-array views (a DataView call per element costs
// more than the conversion itself). Typed arrays use the host's byte order, so they are used
// only on little-endian hosts (all that Node supports in practice); elsewhere the DataView loops
// remain. Unaligned bytes are first copied into an aligned scratch buffer.

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

const view = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/** `bytes` as a view of `width`-byte elements: the same memory when aligned, else an aligned copy. */
const aligned = (bytes: Uint8Array, width: number): { readonly buffer: ArrayBufferLike; readonly byteOffset: number } => {
  if (bytes.byteOffset % width === 0) return bytes
  const copy = new Uint8Array(bytes.byteLength)
  copy.set(bytes)
  return copy
}
const u16View = (bytes: Uint8Array, n: number) => {
  const a = aligned(bytes, 2)
  return new Uint16Array(a.buffer, a.byteOffset, n)
}

/**
 * The float32 bits of every float16 pattern, built on first use from the scalar converter (the
 * reference) and then kept: a table lookup is the fastest exact widening in plain JavaScript.
 */
let f16Table: Int32Array | undefined
const f16ToF32Bits = (): Int32Array => {
  if (f16Table !== undefined) return f16Table
  const table = new Float32Array(65536)
  for (let h = 0; h < 65536; h++) table[h] = f16BitsToFloat(h)
  return (f16Table = new Int32Array(table.buffer))
}

/** Decodes raw little-endian bytes of `dtype` into float64 values (exact for every dtype but I64 beyond 2^53). */
export const toFloat64 = (bytes: Uint8Array, dtype: DType): Float64Array<ArrayBuffer> => {
  const n = bytes.byteLength / byteSize[dtype]
  const out = new Float64Array(n)
  decodeInto(bytes, dtype, out)
  return out
}

/**
 * Decodes raw little-endian bytes of `dtype` into float32 values. For F32 bytes that are
 * 4-byte aligned the result is a view sharing their memory (no copy: merges stream gigabytes).
 */
export const toFloat32 = (bytes: Uint8Array<ArrayBuffer>, dtype: DType): Float32Array<ArrayBuffer> => {
  if (dtype === "F32") {
    if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
    const out = new Float32Array(bytes.byteLength / 4)
    new Uint8Array(out.buffer).set(bytes)
    return out
  }
  const out = new Float32Array(bytes.byteLength / byteSize[dtype])
  decodeInto(bytes, dtype, out)
  return out
}

/**
 * Decodes the first `out.length` elements of the little-endian bytes of `dtype` into `out`
 * (float32 results are exact for every float dtype; NaN payloads may not survive).
 *
 * @category conversions
 */
export const decodeInto = (bytes: Uint8Array, dtype: DType, out: Float32Array | Float64Array): void => {
  if (littleEndian) decodeFast(bytes, dtype, out)
  else decodeScalar(bytes, dtype, out)
}

const decodeFast = (bytes: Uint8Array, dtype: DType, out: Float32Array | Float64Array): void => {
  const n = out.length
  switch (dtype) {
    case "F64": {
      const a = aligned(bytes, 8)
      out.set(new Float64Array(a.buffer, a.byteOffset, n))
      return
    }
    case "F32": {
      const a = aligned(bytes, 4)
      out.set(new Float32Array(a.buffer, a.byteOffset, n))
      return
    }
    case "F16": {
      const h = u16View(bytes, n)
      const table = f16ToF32Bits()
      if (out instanceof Float32Array) lookUp(h, table, new Int32Array(out.buffer, out.byteOffset, n), n)
      else lookUpF64(h, new Float32Array(table.buffer), out, n)
      return
    }
    case "BF16": {
      const b = u16View(bytes, n)
      if (out instanceof Float32Array) shiftUp(b, new Int32Array(out.buffer, out.byteOffset, n), 0, n)
      else {
        // Through a float32 chunk: the bits are the float32's, widening to float64 is exact.
        const chunk = new Float32Array(Math.min(n, 4096))
        const bits = new Int32Array(chunk.buffer)
        for (let i0 = 0; i0 < n; i0 += chunk.length) {
          const m = Math.min(chunk.length, n - i0)
          shiftUp(b, bits, i0, m)
          out.set(m === chunk.length ? chunk : chunk.subarray(0, m), i0)
        }
      }
      return
    }
    case "I64": {
      const a = aligned(bytes, 8)
      const v = new BigInt64Array(a.buffer, a.byteOffset, n)
      for (let i = 0; i < n; i++) out[i] = Number(v[i]!)
      return
    }
    case "I32": {
      const a = aligned(bytes, 4)
      out.set(new Int32Array(a.buffer, a.byteOffset, n))
      return
    }
    case "I16": {
      const a = aligned(bytes, 2)
      out.set(new Int16Array(a.buffer, a.byteOffset, n))
      return
    }
    case "I8": out.set(new Int8Array(bytes.buffer, bytes.byteOffset, n)); return
    case "U8": out.set(bytes.subarray(0, n)); return
    default: return decodeScalar(bytes, dtype, out)
  }
}

// The hot loops, each in its own small function so that every element access in it sees one
// typed-array kind (V8 optimises those best). Int32 views throughout: bit patterns stay small
// integers (a Uint32Array store of a pattern ≥ 2^31 goes through a heap number).
const shiftUp = (b: Uint16Array, bits: Int32Array, from: number, m: number): void => {
  for (let k = 0; k < m; k++) bits[k] = b[from + k]! << 16
}
const lookUp = (h: Uint16Array, table: Int32Array, bits: Int32Array, n: number): void => {
  for (let i = 0; i < n; i++) bits[i] = table[h[i]!]!
}
const lookUpF64 = (h: Uint16Array, table: Float32Array, out: Float64Array, n: number): void => {
  for (let i = 0; i < n; i++) out[i] = table[h[i]!]!
}

/** The per-element reference (and the path of big-endian hosts). */
const decodeScalar = (bytes: Uint8Array, dtype: DType, out: Float32Array | Float64Array): void => {
  const dv = view(bytes)
  const n = out.length
  switch (dtype) {
    case "F64": for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true); return
    case "F32": for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true); return
    case "F16": for (let i = 0; i < n; i++) out[i] = f16BitsToFloat(dv.getUint16(i * 2, true)); return
    case "BF16": for (let i = 0; i < n; i++) out[i] = bf16BitsToFloat(dv.getUint16(i * 2, true)); return
    case "F8_E4M3": for (let i = 0; i < n; i++) out[i] = f8e4m3BitsToFloat(bytes[i]!); return
    case "F8_E5M2": for (let i = 0; i < n; i++) out[i] = f8e5m2BitsToFloat(bytes[i]!); return
    case "I64": for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(i * 8, true)); return
    case "I32": for (let i = 0; i < n; i++) out[i] = dv.getInt32(i * 4, true); return
    case "I16": for (let i = 0; i < n; i++) out[i] = dv.getInt16(i * 2, true); return
    case "I8": for (let i = 0; i < n; i++) out[i] = dv.getInt8(i); return
    case "U8": for (let i = 0; i < n; i++) out[i] = bytes[i]!; return
    case "BOOL": for (let i = 0; i < n; i++) out[i] = bytes[i]! !== 0 ? 1 : 0; return
  }
}

/**
 * Encodes numbers as little-endian bytes of `dtype`. Floats round to nearest even; integers
 * round half away from zero, then saturate to the type's range, like a checked cast.
 */
export const fromNumbers = (values: ArrayLike<number>, dtype: WritableDType): Uint8Array<ArrayBuffer> => {
  const n = values.length
  const out = new Uint8Array(n * byteSize[dtype])
  if (values instanceof Float32Array && (dtype === "F16" || dtype === "BF16")) {
    encodeInto(values, dtype, out)
    return out
  }
  const dv = view(out)
  switch (dtype) {
    case "F64": for (let i = 0; i < n; i++) dv.setFloat64(i * 8, values[i]!, true); break
    case "F32": {
      if (values instanceof Float32Array) out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength))
      else for (let i = 0; i < n; i++) dv.setFloat32(i * 4, values[i]!, true)
      break
    }
    case "F16": for (let i = 0; i < n; i++) dv.setUint16(i * 2, float32ToF16Bits(toF32Exact(values[i]!)), true); break
    case "BF16": for (let i = 0; i < n; i++) dv.setUint16(i * 2, float32ToBF16Bits(toF32Exact(values[i]!)), true); break
    case "I64": for (let i = 0; i < n; i++) dv.setBigInt64(i * 8, BigInt(Math.round(clamp(values[i]!, -(2 ** 63), 2 ** 63 - 1024))), true); break
    case "I32": for (let i = 0; i < n; i++) dv.setInt32(i * 4, Math.round(clamp(values[i]!, -(2 ** 31), 2 ** 31 - 1)), true); break
    case "I16": for (let i = 0; i < n; i++) dv.setInt16(i * 2, Math.round(clamp(values[i]!, -32768, 32767)), true); break
    case "I8": for (let i = 0; i < n; i++) dv.setInt8(i, Math.round(clamp(values[i]!, -128, 127))); break
    case "U8": for (let i = 0; i < n; i++) out[i] = Math.round(clamp(values[i]!, 0, 255)); break
    case "BOOL": for (let i = 0; i < n; i++) out[i] = values[i]! !== 0 ? 1 : 0; break
  }
  return out
}

/**
 * Encodes float32 `values` as float16 or bfloat16 into `out` (2 bytes each from byte 0, an even
 * byte offset): the bytes of {@link fromNumbers}, into memory the caller reuses (a merge's
 * output chunk) instead of a fresh array.
 *
 * @category conversions
 */
export const encodeInto = (values: Float32Array, dtype: "F16" | "BF16", out: Uint8Array): void => {
  const n = values.length
  if (!littleEndian) {
    const dv = view(out)
    const bitsOf = dtype === "BF16" ? float32ToBF16Bits : float32ToF16Bits
    for (let i = 0; i < n; i++) dv.setUint16(i * 2, bitsOf(values[i]!), true)
    return
  }
  const bits = new Int32Array(values.buffer, values.byteOffset, n)
  const half = new Uint16Array(out.buffer, out.byteOffset, n)
  if (dtype === "BF16") narrowBF16(bits, half, n)
  else narrowF16(values, bits, half, n)
}

// float32 bits → bfloat16 bits, as `float32ToBF16Bits`: add 0x7fff plus the kept lowest bit
// (ties to even), keep the high half; NaN keeps its high half with the quiet bit set.
const narrowBF16 = (bits: Int32Array, half: Uint16Array, n: number): void => {
  for (let i = 0; i < n; i++) {
    const b = bits[i]!
    half[i] = (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16
  }
}

// float32 → float16 bits: normal results by integer rounding on the bits (re-bias, add 0xfff
// plus the kept lowest bit, shift; a carry into the exponent is correct, up to Inf); subnormal
// results, overflow, Inf and NaN through the scalar reference (rare in weights).
const F16_MIN_NORMAL = 113 << 23 // 2^-14 as float32 bits
const F16_OVERFLOW = 143 << 23 // 2^16: rounds to Inf
const narrowF16 = (values: Float32Array, bits: Int32Array, half: Uint16Array, n: number): void => {
  for (let i = 0; i < n; i++) {
    const b = bits[i]!
    const a = b & 0x7fffffff
    if (a >= F16_MIN_NORMAL && a < F16_OVERFLOW) {
      half[i] = ((b >>> 16) & 0x8000) | ((a - (112 << 23) + 0xfff + ((a >>> 13) & 1)) >>> 13)
    } else {
      half[i] = float32ToF16Bits(values[i]!)
    }
  }
}

const clamp = (x: number, lo: number, hi: number) => (Number.isNaN(x) ? 0 : x < lo ? lo : x > hi ? hi : x)

/**
 * A float64 rounded to float16/bf16 must not pass through float32 first (double rounding). We
 * only round float64 → float32 when that is exact or cannot change the 16-bit result: for a
 * value that is not representable in f32, nudge it to the f32 on its side of the tie.
 */
const toF32Exact = (x: number): number => {
  const r = Math.fround(x)
  if (r === x || !Number.isFinite(x)) return x
  // Keep the sticky information: pick the f32 neighbour nearer to zero and set its lowest bit,
  // which lies far below the 16-bit rounding position, so it breaks ties the right way.
  f32[0] = Math.abs(r) > Math.abs(x) ? nextTowardZero(r) : r
  u32[0] = u32[0]! | 1
  return f32[0]!
}

const nextTowardZero = (r: number): number => {
  f32[0] = r
  u32[0] = u32[0]! - 1
  return f32[0]!
}
