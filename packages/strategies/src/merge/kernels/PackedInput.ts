/**
 * A tensor held in its own dtype (bf16/f16: 2 bytes an element, half of float32) in shared
 * memory, decoded to float32 one window at a time by whichever thread runs a kernel on it: the
 * range-wise task-arithmetic merge (`PackedTaskArithmetic.ts`) keeps its inputs packed and never
 * builds a whole float32 copy. Decoding is exact (every bf16/f16 value is a float32), so a window
 * holds the float32 values `DType.toFloat32` gives.
 *
 * @since 0.1.0
 */
import { DType } from "@crucible/core"

/** The dtypes a packed input may have. @category models */
export type PackedDType = "F32" | "F16" | "BF16"

/** A whole tensor's raw little-endian bytes (in a `SharedArrayBuffer` to cross to workers). @category models */
export interface PackedInput {
  readonly bytes: Uint8Array
  readonly dtype: PackedDType
}

/** Bytes per element of a packed dtype. @category models */
export const bytesPer: Readonly<Record<PackedDType, number>> = { F32: 4, F16: 2, BF16: 2 }

/** Whether a dtype can be held packed. @category predicates */
export const isPackable = (dtype: string): dtype is PackedDType => dtype === "F32" || dtype === "F16" || dtype === "BF16"

// Node's Buffer copy (a memmove). `TypedArray.prototype.set` moves a SharedArrayBuffer's bytes
// with relaxed atomic copies, which took twice the CPU time of a memmove (14% of a 3 × 1.33 GB
// bf16 TIES merge's CPU went to V8's relaxed_memmove).
const memmove = (globalThis as { readonly Buffer?: { readonly prototype: { readonly copy: (this: Uint8Array, target: Uint8Array, targetStart: number, sourceStart: number, sourceEnd: number) => number } } }).Buffer?.prototype.copy

/**
 * Copies `source[sourceStart, sourceEnd)` into `target` from byte `targetStart` (either may be
 * in shared memory): a memmove where Node's `Buffer` is there, `TypedArray.set` elsewhere.
 *
 * @category encode
 */
export const copyBytes = (target: Uint8Array, targetStart: number, source: Uint8Array, sourceStart: number, sourceEnd: number): void => {
  if (memmove !== undefined) memmove.call(source, target, targetStart, sourceStart, sourceEnd)
  else target.set(source.subarray(sourceStart, sourceEnd), targetStart)
}

/** Elements of the tensor. @category models */
export const length = (input: PackedInput): number => input.bytes.byteLength / bytesPer[input.dtype]

/**
 * Decodes elements `[start, end)` of `input` into `out[0, end − start)`. The bytes are read as
 * typed-array views, so their byte offset must be a multiple of the element size (the buffers
 * that hold packed inputs start at 0).
 *
 * @category decode
 */
export const decode = (input: PackedInput, start: number, end: number, out: Float32Array): void => {
  const { bytes, dtype } = input
  const m = end - start
  if (dtype === "F32") {
    out.set(new Float32Array(bytes.buffer, bytes.byteOffset + start * 4, m))
    return
  }
  const halves = new Uint16Array(bytes.buffer, bytes.byteOffset + start * 2, m)
  const bits = new Uint32Array(out.buffer, out.byteOffset, m)
  if (dtype === "BF16") {
    // bf16 is the high half of a float32: a shift, exact.
    for (let k = 0; k < m; k++) bits[k] = halves[k]! << 16
    return
  }
  for (let k = 0; k < m; k++) bits[k] = f16ToF32Bits(halves[k]!)
}

/** The float32 bits of the float16 bits `h` (exact; NaN stays NaN with its payload). @category decode */
export const f16ToF32Bits = (h: number): number => {
  const sign = (h & 0x8000) << 16
  const exp = (h >>> 10) & 0x1f
  let mant = h & 0x3ff
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0
  if (mant === 0) return sign >>> 0
  // Subnormal: normalise the mantissa (value mant·2⁻²⁴).
  let e = 113
  while ((mant & 0x400) === 0) {
    mant <<= 1
    e--
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0
}

/**
 * Encodes `values` as bfloat16 into `out` (2 bytes each, from byte 0), rounding to nearest even
 * with NaN kept a quiet NaN: the bytes of `DType.fromNumbers(values, "BF16")`, written by the
 * thread that computed the values instead of allocated afresh on the calling thread.
 *
 * @category encode
 */
export const encodeBF16 = (values: Float32Array, out: Uint8Array): void => DType.encodeInto(values, "BF16", out)
