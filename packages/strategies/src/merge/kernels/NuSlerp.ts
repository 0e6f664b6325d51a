/**
 * mergekit's NuSLERP: spherical interpolation of two tensors x, y by `t`, one vector at a time:
 * `(sin((1−t)Ω)·x + sin(tΩ)·y) / sin Ω`, `cos Ω = ⟨x/‖x‖, y/‖y‖⟩` (norms clamped at 1e-7),
 * linear `(1−t)·x + t·y` where `|sin Ω| < 1e-8`. The vectors are the whole tensor (`flatten`),
 * its rows (the last axis), or its columns (`rowWise`: the first axis). With a base, x and y are
 * task vectors and the base is added back. All sums are float64, rounded once; a whole-tensor
 * vector's sums are blockwise (`BlockSums.ts`), so the pool form (`Parallel.nuSlerp`) gives the same bytes.
 *
 * @since 0.1.0
 */
import { Result } from "effect"
import * as BlockSums from "./BlockSums.ts"
import { InvalidMergeParameter, type MergeKernelError } from "./KernelError.ts"

/** @category params */
export interface NuSlerpParams {
  /** The interpolation factor: mergekit's `weight[1] / (weight[0] + weight[1])`. */
  readonly t: number
  /** Interpolate columns (vectors along the first axis) instead of rows; ignored when `flatten`. */
  readonly rowWise: boolean
  /** Interpolate the whole tensor as one vector. */
  readonly flatten: boolean
}

const NORM_EPS = 1e-7
const COLINEAR_EPS = 1e-8

/**
 * `t` from the two models' weights as mergekit computes it: w₁ / (w₀ + w₁), or ½ when the weights
 * (nearly) cancel.
 *
 * @category params
 */
export const interpolationFactor = (weights: ReadonlyArray<number>, tensor: string): Result.Result<number, MergeKernelError> => {
  if (weights.length !== 2 || !weights.every(Number.isFinite)) {
    return Result.fail(new InvalidMergeParameter({ method: "nuslerp", tensor, parameter: "weight", detail: `needs two finite weights, got [${weights.join(", ")}]` }))
  }
  const total = weights[0]! + weights[1]!
  return Result.succeed(Math.abs(total) < 1e-6 ? 0.5 : weights[1]! / total)
}

/** How a tensor of `shape` splits into vectors: `count` vectors of `length`, element k of vector r at `r·vectorStep + k·elementStep`. @category layout */
export interface Vectors {
  readonly count: number
  readonly length: number
  readonly vectorStep: number
  readonly elementStep: number
}

/** @category layout */
export const vectors = (shape: ReadonlyArray<number>, params: Pick<NuSlerpParams, "rowWise" | "flatten">): Vectors => {
  const n = shape.reduce((a, b) => a * b, 1)
  if (params.flatten || shape.length <= 1 || n === 0) return { count: 1, length: n, vectorStep: 0, elementStep: 1 }
  if (params.rowWise) {
    const length = shape[0]!
    return { count: n / length, length, vectorStep: 1, elementStep: n / length }
  }
  const length = shape.at(-1)!
  return { count: n / length, length, vectorStep: length, elementStep: 1 }
}

/** The two coefficients of one vector from its sums ⟨x,x⟩, ⟨y,y⟩, ⟨x,y⟩. @category kernels */
export const coefficients = (t: number, xx: number, yy: number, xy: number): readonly [number, number] => {
  const cos = xy / (Math.max(Math.sqrt(xx), NORM_EPS) * Math.max(Math.sqrt(yy), NORM_EPS))
  const omega = Math.acos(Math.min(1, Math.max(-1, cos)))
  const sin = Math.sin(omega)
  // Nearly colinear vectors: the sines vanish, so interpolate linearly (as mergekit).
  return Math.abs(sin) < COLINEAR_EPS ? [1 - t, t] : [Math.sin((1 - t) * omega) / sin, Math.sin(t * omega) / sin]
}

/** Whether the tensor is one vector: its sums are then blockwise ({@link sumPartials}), so they split over threads. @category layout */
export const isFlat = (shape: ReadonlyArray<number>, params: Pick<NuSlerpParams, "rowWise" | "flatten">): boolean =>
  vectors(shape, params).count === 1

/** `out = origin + cx·(a − origin) + cy·(b − origin)` on `[start, end)`, origin the base or 0. @category kernels */
export const mix = (cx: number, cy: number, out: Float32Array, a: Float32Array, b: Float32Array, base: Float32Array | undefined, start = 0, end = out.length): void => {
  if (base === undefined) for (let j = start; j < end; j++) out[j] = 0 + cx * a[j]! + cy * b[j]!
  else {
    for (let j = start; j < end; j++) {
      const origin = base[j]!
      out[j] = origin + cx * (a[j]! - origin) + cy * (b[j]! - origin)
    }
  }
}

/**
 * Interpolates the whole vectors in `[start, end)` of a tensor of several vectors: rows, or, for
 * columns (`rowWise`), the columns `start / length … end / length` (`length` = `shape[0]`), so a
 * split on multiples of the vector length gives whole vectors. Each vector's sums run over its
 * elements in order, in one thread: the bytes never depend on the split.
 *
 * @category kernels
 */
export const applyVectors = (
  params: NuSlerpParams,
  shape: ReadonlyArray<number>,
  out: Float32Array,
  a: Float32Array,
  b: Float32Array,
  base: Float32Array | undefined,
  start: number,
  end: number
): void => {
  const { length, vectorStep, elementStep } = vectors(shape, params)
  if (length === 0) return
  const first = start / length, last = end / length
  if (elementStep === 1) {
    for (let r = first; r < last; r++) {
      const [xx, yy, xy] = sums(a, b, base, r * vectorStep, r * vectorStep + length)
      const [cx, cy] = coefficients(params.t, xx, yy, xy)
      mix(cx, cy, out, a, b, base, r * vectorStep, r * vectorStep + length)
    }
    return
  }
  // Columns: walk the rows in memory order over a band of columns, each column's sums still in
  // row order (the bytes of one column at a time, without striding through memory per column).
  const width = last - first
  const acc = new Float64Array(3 * width)
  for (let k = 0; k < length; k++) {
    const row = k * elementStep
    for (let c = 0; c < width; c++) {
      const j = row + first + c
      const origin = base === undefined ? 0 : base[j]!
      const xk = a[j]! - origin, yk = b[j]! - origin
      acc[3 * c] = acc[3 * c]! + xk * xk
      acc[3 * c + 1] = acc[3 * c + 1]! + yk * yk
      acc[3 * c + 2] = acc[3 * c + 2]! + xk * yk
    }
  }
  const cs = new Float64Array(2 * width)
  for (let c = 0; c < width; c++) [cs[2 * c], cs[2 * c + 1]] = coefficients(params.t, acc[3 * c]!, acc[3 * c + 1]!, acc[3 * c + 2]!)
  for (let k = 0; k < length; k++) {
    const row = k * elementStep
    for (let c = 0; c < width; c++) {
      const j = row + first + c
      const origin = base === undefined ? 0 : base[j]!
      out[j] = origin + cs[2 * c]! * (a[j]! - origin) + cs[2 * c + 1]! * (b[j]! - origin)
    }
  }
}

/** Per block of `Gram.BLOCK` in `[start, end)` (start on a block boundary): ⟨x,x⟩, ⟨y,y⟩, ⟨x,y⟩ (`BlockSums.ts`). @category kernels */
export const sumPartials = (a: Float32Array, b: Float32Array, base: Float32Array | undefined, start: number, end: number): Float64Array =>
  BlockSums.partials(start, end, 3, (b0, b1, block) => {
    const [xx, yy, xy] = sums(a, b, base, b0, b1)
    block[0] = xx
    block[1] = yy
    block[2] = xy
  })

/** ⟨x,x⟩, ⟨y,y⟩, ⟨x,y⟩ of one contiguous vector, summed in order. */
const sums = (a: Float32Array, b: Float32Array, base: Float32Array | undefined, start: number, end: number): readonly [number, number, number] => {
  let xx = 0, yy = 0, xy = 0
  for (let j = start; j < end; j++) {
    const origin = base === undefined ? 0 : base[j]!
    const xk = a[j]! - origin, yk = b[j]! - origin
    xx += xk * xk
    yy += yk * yk
    xy += xk * yk
  }
  return [xx, yy, xy]
}

/**
 * Writes the interpolation of `a` and `b` (task vectors over `base` when given) into `out`. A flat
 * tensor's sums are {@link sumPartials}' (per block of `Gram.BLOCK`, blocks added in order), as the
 * pool form computes them.
 *
 * @category kernels
 */
export const apply = (params: NuSlerpParams, shape: ReadonlyArray<number>, out: Float32Array, a: Float32Array, b: Float32Array, base?: Float32Array): void => {
  if (!isFlat(shape, params)) return applyVectors(params, shape, out, a, b, base, 0, out.length)
  const [xx, yy, xy] = BlockSums.combine([sumPartials(a, b, base, 0, out.length)], 3)
  const [cx, cy] = coefficients(params.t, xx!, yy!, xy!)
  mix(cx, cy, out, a, b, base)
}
