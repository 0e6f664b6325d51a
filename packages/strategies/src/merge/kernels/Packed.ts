/**
 * Merge kernels on packed bytes — bf16, f16 and f32 as stored — in one WebAssembly SIMD pass:
 * each step of 8 elements loads every input, widens it to float32 lanes, sums
 * `Σᵢ cᵢ·xᵢ` in float64 left to right exactly as `WeightedSum.ts`, rounds once to float32 and
 * encodes the result, so no float32 copy of a tensor is ever made and no element goes through a
 * DataView. The bytes equal {@link weightedSumJs}, the JavaScript reference (decode with
 * `DType`, `WeightedSum.weightedSum`, encode with `DType.fromNumbers`), for every non-NaN result;
 * a NaN stays a NaN (its payload may differ, as it does between torch's own paths).
 *
 * Widening is exact: bf16 is the high half of a float32; f16 is `((h & 0x7fff) << 13)` read as a
 * float32 and multiplied by 2¹¹², which also scales subnormals exactly, with the exponent forced
 * to all ones for Inf/NaN and the sign or'ed back. Narrowing rounds to nearest even: bf16 as
 * `float32ToBF16Bits` (add 0x7fff plus the kept lowest bit), f16 as Giesen's
 * `float_to_half_fast3_rtne` (integer rounding for normal results, a float add of 0.5 for
 * subnormal ones, Inf for overflow, 0x7e00 for NaN).
 *
 * The arrays must live in the memory the kernels were made on (see `Arena.ts`); the functions
 * return false / undefined otherwise, and the caller runs the JavaScript reference.
 *
 * @since 0.1.0
 */
import { DType } from "@crucible/core"
import { MAX_INPUTS } from "./Simd.ts"
import * as Wasm from "./Wasm.ts"
import { weightedSum } from "./WeightedSum.ts"

/** The dtypes the packed kernels read and write. @category models */
export type PackedDType = "F32" | "BF16" | "F16"

/** @category predicates */
export const isPacked = (dtype: DType.DType): dtype is PackedDType => dtype === "F32" || dtype === "BF16" || dtype === "F16"

/** Bytes per element. @category constants */
export const bytesPer = (dtype: PackedDType): 2 | 4 => (dtype === "F32" ? 4 : 2)

/** Kernels bound to one shared memory. @category models */
export interface PackedKernels {
  readonly memory: WebAssembly.Memory
  /** out[start,end) = encode(outDtype, Σᵢ cᵢ·decode(inDtype, inputs[i][j])) with the bits of {@link weightedSumJs}; start/end are ELEMENT indices into every array (the byte offset is start × bytesPer). false (nothing done) when an array is not in `memory`, there are 0 or more than MAX_INPUTS inputs, or a dtype is not packed. */
  readonly weightedSum: (out: Uint8Array, outDtype: PackedDType, inputs: ReadonlyArray<Uint8Array>, inDtype: PackedDType, coefficients: ArrayLike<number>, start: number, end: number) => boolean
  /** Whether x[start,end) (elements of dtype) holds NaN or ±Inf; undefined when x is not in memory. */
  readonly hasNonFinite: (x: Uint8Array, dtype: PackedDType, start: number, end: number) => boolean | undefined
  /** out (f32) [start,end) = decode(dtype, x[start,end)); false when not in memory. */
  readonly widen: (out: Float32Array, x: Uint8Array, dtype: PackedDType, start: number, end: number) => boolean
  /** out (dtype) [start,end) = encode(dtype, x[start,end)) (round to nearest even); false when not in memory. */
  readonly narrow: (out: Uint8Array, dtype: PackedDType, x: Float32Array, start: number, end: number) => boolean
}

type Fn = (...args: Array<number>) => number

/**
 * Instantiates the kernels on `memory`. `owns` tells whether a view lies in that memory (pass
 * `arena.owns`, which knows every buffer a grow handed out); the default knows the buffers this
 * thread has seen from `memory.buffer`, enough for views made after the last grow (a worker).
 *
 * @category constructors
 */
export const make = (memory: WebAssembly.Memory, owns?: (view: ArrayBufferView) => boolean): PackedKernels => {
  const instantiate = (module: WebAssembly.Module) => new WebAssembly.Instance(module, { env: { memory } }).exports as Record<string, Fn>
  const exports = instantiate(compiled("helpers", helperFuncs))
  // One module per (input, output) dtype pair, made on first use: a merge needs one or two.
  const sums = new Map<string, Record<string, Fn>>()
  const sumOf = (inDtype: PackedDType, outDtype: PackedDType, n: number): Fn => {
    const key = `${inDtype}_${outDtype}`
    let pair = sums.get(key)
    if (pair === undefined) {
      pair = instantiate(compiled(key, () => sumFuncs(inDtype, outDtype)))
      sums.set(key, pair)
    }
    return pair[`sum_${key}_${n}`]!
  }
  const inMemory = owns ?? Wasm.owner(memory).owns
  const args: Array<number> = []
  const STEP = 8

  const weightedSum: PackedKernels["weightedSum"] = (out, outDtype, inputs, inDtype, coefficients, start, end) => {
    const n = inputs.length
    if (n === 0 || n > MAX_INPUTS || !isPacked(outDtype) || !isPacked(inDtype) || !inMemory(out) || !inputs.every(inMemory)) return false
    const steps = Math.max(0, end - start) >>> 3
    if (steps > 0) {
      const inBytes = bytesPer(inDtype)
      args.length = 0
      args.push(out.byteOffset + start * bytesPer(outDtype))
      for (const x of inputs) args.push(x.byteOffset + start * inBytes)
      args.push(steps)
      for (let i = 0; i < n; i++) args.push(coefficients[i]!)
      sumOf(inDtype, outDtype, n)(...args)
    }
    const tail = start + steps * STEP
    if (tail < end) weightedSumJs(out, outDtype, inputs, inDtype, coefficients, tail, end)
    return true
  }

  const hasNonFinite: PackedKernels["hasNonFinite"] = (x, dtype, start, end) => {
    if (!isPacked(dtype) || !inMemory(x)) return undefined
    const size = bytesPer(dtype)
    const vectors = Math.floor((Math.max(0, end - start) * size) / 16)
    const pointer = x.byteOffset + start * size
    if (vectors > 0) {
      const found = dtype === "F32" ? exports.nonfinite32!(pointer, vectors * 16) : exports.nonfinite16!(pointer, vectors * 16, EXPONENT16[dtype])
      if (found !== 0) return true
    }
    return hasNonFiniteJs(x, dtype, start + (vectors * 16) / size, end)
  }

  const widen: PackedKernels["widen"] = (out, x, dtype, start, end) => {
    if (!isPacked(dtype) || !inMemory(out) || !inMemory(x)) return false
    if (end <= start) return true
    if (dtype === "F32") {
      new Uint8Array(out.buffer, out.byteOffset + start * 4, (end - start) * 4).set(x.subarray(start * 4, end * 4))
      return true
    }
    const steps = (end - start) >>> 3
    if (steps > 0) exports[`widen_${dtype}`]!(out.byteOffset + start * 4, x.byteOffset + start * 2, steps)
    const tail = start + steps * STEP
    if (tail < end) DType.decodeInto(x.subarray(tail * 2, end * 2), dtype, out.subarray(tail, end))
    return true
  }

  const narrow: PackedKernels["narrow"] = (out, dtype, x, start, end) => {
    if (!isPacked(dtype) || !inMemory(out) || !inMemory(x)) return false
    if (end <= start) return true
    if (dtype === "F32") {
      out.set(new Uint8Array(x.buffer, x.byteOffset + start * 4, (end - start) * 4), start * 4)
      return true
    }
    const steps = (end - start) >>> 3
    if (steps > 0) exports[`narrow_${dtype}`]!(out.byteOffset + start * 2, x.byteOffset + start * 4, steps)
    const tail = start + steps * STEP
    if (tail < end) out.set(DType.fromNumbers(x.subarray(tail, end), dtype), tail * 2)
    return true
  }

  return { memory, weightedSum, hasNonFinite, widen, narrow }
}

// ---------------------------------------------------------------------------------------------
// The JavaScript reference (and the path for arrays outside the memory, and for tails)

/** Elements decoded at a time: a few float32 chunks that stay in cache. */
const CHUNK = 4096

/**
 * The JS reference with the same bits (no memory needed): decode each input to float32 (DType),
 * weightedSum (WeightedSum.ts), encode (DType.fromNumbers on the float32 sum).
 *
 * @category kernels
 */
export const weightedSumJs = (
  out: Uint8Array,
  outDtype: PackedDType,
  inputs: ReadonlyArray<Uint8Array>,
  inDtype: PackedDType,
  coefficients: ArrayLike<number>,
  start: number,
  end: number
): void => {
  if (end <= start) return
  const inBytes = bytesPer(inDtype), outBytes = bytesPer(outDtype)
  const size = Math.min(CHUNK, end - start)
  const decoded = inputs.map(() => new Float32Array(size))
  const sum = new Float32Array(size)
  for (let j0 = start; j0 < end; j0 += size) {
    const m = Math.min(size, end - j0)
    const xs = m === size ? decoded : decoded.map((d) => d.subarray(0, m))
    inputs.forEach((x, i) => DType.decodeInto(x.subarray(j0 * inBytes, (j0 + m) * inBytes), inDtype, xs[i]!))
    const s = m === size ? sum : sum.subarray(0, m)
    weightedSum(s, xs, coefficients, 0, m)
    out.set(DType.fromNumbers(s, outDtype), j0 * outBytes)
  }
}

/**
 * Whether `x[start, end)` (elements of `dtype`) holds NaN or ±Inf: all exponent bits set, read
 * from the little-endian high byte(s) (no alignment needed).
 *
 * @category predicates
 */
export const hasNonFiniteJs = (x: Uint8Array, dtype: PackedDType, start: number, end: number): boolean => {
  if (dtype === "F32") {
    for (let j = start; j < end; j++) if ((x[4 * j + 3]! & 0x7f) === 0x7f && (x[4 * j + 2]! & 0x80) !== 0) return true
  } else if (dtype === "BF16") {
    for (let j = start; j < end; j++) if ((x[2 * j + 1]! & 0x7f) === 0x7f && (x[2 * j]! & 0x80) !== 0) return true
  } else {
    for (let j = start; j < end; j++) if ((x[2 * j + 1]! & 0x7c) === 0x7c) return true
  }
  return false
}

// ---------------------------------------------------------------------------------------------
// The module (assembled by Wasm.ts)

const { op, I32, F64, V128, HIGH_HALF, JOIN_LOW_HALVES, i32x4Bytes } = Wasm

const EXPONENT16: Readonly<Record<"BF16" | "F16", number>> = { BF16: 0x7f80, F16: 0x7c00 }

// Compiled modules, by name, kept for the life of the thread (as Simd.ts keeps its one module).
const compiledModules = new Map<string, WebAssembly.Module>()
const compiled = (key: string, funcs: () => ReadonlyArray<Wasm.Func>): WebAssembly.Module => {
  let module = compiledModules.get(key)
  if (module === undefined) {
    module = new WebAssembly.Module(Wasm.module(funcs()))
    compiledModules.set(key, module)
  }
  return module
}

/** Whether this runtime validates the packed kernels (WebAssembly SIMD). @category predicates */
export const isSupported = (): boolean => {
  try {
    return WebAssembly.validate(Wasm.module([...helperFuncs(), sumFunc("F16", "F16", 1)]))
  } catch {
    return false
  }
}

/**
 * Locals for one function: v128 constants are set once before the loop (`constant`), scratch
 * v128 locals are numbered after them (`scratch`).
 */
const locals = (firstFree: number) => {
  const constants = new Map<number, number>()
  const scratch = new Map<string, number>()
  let next = firstFree
  return {
    constant: (value: number): number => {
      const at = constants.get(value | 0) ?? next++
      constants.set(value | 0, at)
      return at
    },
    scratch: (name: string): number => {
      const at = scratch.get(name) ?? next++
      scratch.set(name, at)
      return at
    },
    prologue: (): Array<number> => [...constants].flatMap(([value, at]) => [...op.v128Const(i32x4Bytes(value)), ...op.localSet(at)]),
    count: () => next - firstFree
  }
}
type Locals = ReturnType<typeof locals>

// Loads 4 elements (group 0 or 1 of a step of 8) at the address in local `pointer` and leaves
// them on the stack as float32x4, exactly widened.
const widen4 = (dtype: PackedDType, pointer: number, group: number, l: Locals): Array<number> => {
  if (dtype === "F32") return [...op.localGet(pointer), ...op.v128Load(16 * group)]
  const load = [...op.localGet(pointer), ...op.v128Load16x4U(8 * group)]
  if (dtype === "BF16") return [...load, ...op.i32Const(16), ...op.i32x4Shl()]
  const h = l.scratch("h")
  const c = (v: number) => op.localGet(l.constant(v))
  return [
    ...load, ...op.localSet(h),
    // magnitude: exponent and mantissa moved into float32 position, scaled by 2^112 (exact)
    ...op.localGet(h), ...c(0x7fff), ...op.v128And(), ...op.i32Const(13), ...op.i32x4Shl(), ...c(0x77800000), ...op.f32x4Mul(),
    // Inf/NaN: all five exponent bits set → all eight
    ...op.localGet(h), ...c(0x7c00), ...op.v128And(), ...c(0x7c00), ...op.i32x4Eq(), ...c(0x7f800000), ...op.v128And(), ...op.v128Or(),
    ...op.localGet(h), ...c(0x8000), ...op.v128And(), ...op.i32Const(16), ...op.i32x4Shl(), ...op.v128Or()
  ]
}

// Encodes the float32x4 on the stack as 16-bit patterns in i32x4 lanes (bf16 or f16).
const encode4 = (dtype: "BF16" | "F16", l: Locals): Array<number> => {
  const t = l.scratch("t")
  const c = (v: number) => op.localGet(l.constant(v))
  const get = op.localGet
  if (dtype === "BF16") {
    return [
      ...op.localSet(t),
      ...get(t), ...op.i32Const(16), ...op.i32x4ShrU(), ...c(0x40), ...op.v128Or(), // NaN: quiet
      ...get(t), ...c(0x7fff), ...op.i32x4Add(),
      ...get(t), ...op.i32Const(16), ...op.i32x4ShrU(), ...c(1), ...op.v128And(), ...op.i32x4Add(), ...op.i32Const(16), ...op.i32x4ShrU(),
      ...get(t), ...c(0x7fffffff), ...op.v128And(), ...c(0x7f800000), ...op.i32x4GtS(),
      ...op.v128Bitselect()
    ]
  }
  const sign = l.scratch("sign"), a = l.scratch("abs")
  return [
    ...op.localTee(t), ...c(0x80000000), ...op.v128And(), ...op.localTee(sign), ...get(t), ...op.v128Xor(), ...op.localSet(a),
    // |x| ≥ 2^16: Inf, or a quiet NaN
    ...c(0x7e00), ...c(0x7c00), ...get(a), ...c(0x7f800000), ...op.i32x4GtS(), ...op.v128Bitselect(),
    // |x| < 2^-14: a subnormal result, rounded by the float add of 0.5
    ...get(a), ...c(0x3f000000), ...op.f32x4Add(), ...c(0x3f000000), ...op.i32x4Sub(),
    // normal: re-bias, add 0xfff plus the kept lowest bit, shift
    ...get(a), ...c((15 - 127) * 2 ** 23 + 0xfff), ...op.i32x4Add(),
    ...get(a), ...op.i32Const(13), ...op.i32x4ShrU(), ...c(1), ...op.v128And(), ...op.i32x4Add(), ...op.i32Const(13), ...op.i32x4ShrU(),
    ...get(a), ...c(113 << 23), ...op.i32x4LtS(), ...op.v128Bitselect(),
    ...get(a), ...c(143 << 23), ...op.i32x4GeS(), ...op.v128Bitselect(),
    ...get(sign), ...op.i32Const(16), ...op.i32x4ShrU(), ...op.v128Or()
  ]
}

// Stores two float32x4 (elements 0–3 from `first`, 4–7 from `second`, each code leaving one
// float32x4 on the stack) at the address in local `pointer`, encoded as `dtype`.
const store8 = (dtype: PackedDType, pointer: number, first: ReadonlyArray<number>, second: ReadonlyArray<number>, l: Locals): Array<number> =>
  dtype === "F32"
    ? [...op.localGet(pointer), ...first, ...op.v128Store(0), ...op.localGet(pointer), ...second, ...op.v128Store(16)]
    : [...op.localGet(pointer), ...first, ...encode4(dtype, l), ...second, ...encode4(dtype, l), ...op.i16x8NarrowI32x4U(), ...op.v128Store(0)]

// The loop every kernel shares: `body`, then each pointer advances by its step, until `steps` is 0
// (the caller passes steps ≥ 1).
const loop = (body: ReadonlyArray<number>, pointers: ReadonlyArray<readonly [local: number, step: number]>, steps: number): Array<number> => [
  ...op.loop,
  ...body,
  ...pointers.flatMap(([p, step]) => [...op.localGet(p), ...op.i32Const(step), ...op.i32Add, ...op.localSet(p)]),
  ...op.localGet(steps), ...op.i32Const(1), ...op.i32Sub, ...op.localTee(steps), ...op.brIf(0),
  ...op.end
]

// sum_IN_OUT_N(out, x₀…x_{N−1}, steps, c₀…c_{N−1}): per step of 8 elements, four float64x2
// accumulators (elements 0–1, 2–3, 4–5, 6–7) take cₖ·xₖ left to right, then are demoted once.
const sumFunc = (inDtype: PackedDType, outDtype: PackedDType, n: number): Wasm.Func => {
  const out = 0, steps = n + 1, coef = n + 2
  const splat = 2 * n + 2, acc = splat + n
  const l = locals(acc + 4)
  const body: Array<number> = []
  for (let k = 0; k < n; k++) {
    for (let g = 0; g < 2; g++) {
      const x = l.scratch("x")
      body.push(...widen4(inDtype, 1 + k, g, l), ...op.localTee(x))
      body.push(...op.f64x2PromoteLowF32x4(), ...op.localGet(splat + k), ...op.f64x2Mul())
      if (k > 0) body.push(...op.localGet(acc + 2 * g), ...op.f64x2Add())
      body.push(...op.localSet(acc + 2 * g))
      body.push(...op.localGet(x), ...op.localGet(x), ...op.shuffle(HIGH_HALF))
      body.push(...op.f64x2PromoteLowF32x4(), ...op.localGet(splat + k), ...op.f64x2Mul())
      if (k > 0) body.push(...op.localGet(acc + 2 * g + 1), ...op.f64x2Add())
      body.push(...op.localSet(acc + 2 * g + 1))
    }
  }
  const joined = (g: number) => [
    ...op.localGet(acc + 2 * g), ...op.f32x4DemoteF64x2Zero(), ...op.localGet(acc + 2 * g + 1), ...op.f32x4DemoteF64x2Zero(), ...op.shuffle(JOIN_LOW_HALVES)
  ]
  body.push(...store8(outDtype, out, joined(0), joined(1), l))
  const pointers: Array<readonly [number, number]> = [[out, 8 * bytesPer(outDtype)]]
  for (let k = 0; k < n; k++) pointers.push([1 + k, 8 * bytesPer(inDtype)])
  const main = loop(body, pointers, steps)
  const splats = Array.from({ length: n }, (_, k) => [...op.localGet(coef + k), ...op.f64x2Splat(), ...op.localSet(splat + k)]).flat()
  return {
    name: `sum_${inDtype}_${outDtype}_${n}`,
    params: [I32, ...Array<number>(n).fill(I32), I32, ...Array<number>(n).fill(F64)],
    results: [],
    locals: [[n + 4 + l.count(), V128]],
    code: [...splats, ...l.prologue(), ...main]
  }
}

// widen_D(out f32, x, steps) and narrow_D(out, x f32, steps): 8 elements a step.
const widenFunc = (dtype: "BF16" | "F16"): Wasm.Func => {
  const out = 0, x = 1, steps = 2
  const l = locals(3)
  const body = [...op.localGet(out), ...widen4(dtype, x, 0, l), ...op.v128Store(0), ...op.localGet(out), ...widen4(dtype, x, 1, l), ...op.v128Store(16)]
  const main = loop(body, [[out, 32], [x, 16]], steps)
  return { name: `widen_${dtype}`, params: [I32, I32, I32], results: [], locals: [[l.count(), V128]], code: [...l.prologue(), ...main] }
}
const narrowFunc = (dtype: "BF16" | "F16"): Wasm.Func => {
  const out = 0, x = 1, steps = 2
  const l = locals(3)
  const body = store8(dtype, out, [...op.localGet(x), ...op.v128Load(0)], [...op.localGet(x), ...op.v128Load(16)], l)
  const main = loop(body, [[out, 16], [x, 32]], steps)
  return { name: `narrow_${dtype}`, params: [I32, I32, I32], results: [], locals: [[l.count(), V128]], code: [...l.prologue(), ...main] }
}

// nonfinite16(pointer, bytes, exponent) / nonfinite32(pointer, bytes): ORs "all exponent bits
// set" lane by lane over 16-byte steps, then asks whether any lane was ever set.
const nonFiniteFunc = (width: 16 | 32): Wasm.Func => {
  const pointer = 0, bytes = 1
  const i = width === 16 ? 3 : 2
  const acc = i + 1, mask = i + 2
  const code: Array<number> = width === 16
    ? [...op.localGet(2), ...op.i16x8Splat(), ...op.localSet(mask)]
    : [...op.v128Const(i32x4Bytes(0x7f800000)), ...op.localSet(mask)]
  const eq = width === 16 ? op.i16x8Eq() : op.i32x4Eq()
  code.push(...op.block, ...op.loop)
  code.push(...op.localGet(i), ...op.localGet(bytes), ...op.i32GeU, ...op.brIf(1))
  code.push(...op.localGet(acc))
  code.push(...op.localGet(pointer), ...op.localGet(i), ...op.i32Add, ...op.v128Load(), ...op.localGet(mask), ...op.v128And(), ...op.localGet(mask), ...eq)
  code.push(...op.v128Or(), ...op.localSet(acc))
  code.push(...op.localGet(i), ...op.i32Const(16), ...op.i32Add, ...op.localSet(i), ...op.br(0))
  code.push(...op.end, ...op.end)
  code.push(...op.localGet(acc), ...op.v128AnyTrue())
  return {
    name: `nonfinite${width}`,
    params: width === 16 ? [I32, I32, I32] : [I32, I32],
    results: [I32],
    locals: [[1, I32], [2, V128]],
    code
  }
}

const sumFuncs = (inDtype: PackedDType, outDtype: PackedDType): Array<Wasm.Func> =>
  Array.from({ length: MAX_INPUTS }, (_, k) => sumFunc(inDtype, outDtype, k + 1))
const helperFuncs = (): Array<Wasm.Func> => {
  const sixteen = ["BF16", "F16"] as const
  return [...sixteen.map(widenFunc), ...sixteen.map(narrowFunc), nonFiniteFunc(16), nonFiniteFunc(32)]
}
