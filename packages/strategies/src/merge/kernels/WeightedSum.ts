/**
 * The fused weighted sum every affine merge reduces to: `out[j] = Σᵢ cᵢ·xᵢ[j]`.
 *
 * Linear, task arithmetic without sparsification, SLERP, multi-SLERP, model stock and
 * passthrough all end in this loop once their coefficients are known (a base model is one more
 * input, with coefficient `1 − Σ cᵢ`). Each element is accumulated left to right in float64 and
 * rounded once to float32, so the result is as exact as float32 output allows and does not
 * depend on how a tensor is split into ranges. The SIMD kernel (`Simd.ts`) computes the same
 * operations in the same order and gives bit-identical output.
 *
 * @since 0.1.0
 */

/** Elements accumulated at a time by the generic path (fits L1 as float64). */
const CHUNK = 2048

/**
 * `out[j] = Σᵢ coefficients[i]·inputs[i][j]` for `j ∈ [start, end)`. `out` may alias an input.
 * Lengths are the caller's contract (the plan functions check them).
 *
 * @category kernels
 */
export const weightedSum = (
  out: Float32Array,
  inputs: ReadonlyArray<Float32Array>,
  coefficients: ArrayLike<number>,
  start = 0,
  end = out.length
): void => {
  switch (inputs.length) {
    case 0:
      out.fill(0, start, end)
      return
    case 1:
      return sum1(out, inputs[0]!, coefficients[0]!, start, end)
    case 2:
      return sum2(out, inputs[0]!, inputs[1]!, coefficients[0]!, coefficients[1]!, start, end)
    case 3:
      return sum3(out, inputs, coefficients, start, end)
    case 4:
      return sum4(out, inputs, coefficients, start, end)
    default:
      return sumMany(out, inputs, coefficients, start, end)
  }
}

const sum1 = (out: Float32Array, a: Float32Array, c0: number, start: number, end: number): void => {
  for (let j = start; j < end; j++) out[j] = c0 * a[j]!
}

const sum2 = (out: Float32Array, a: Float32Array, b: Float32Array, c0: number, c1: number, start: number, end: number): void => {
  for (let j = start; j < end; j++) out[j] = c0 * a[j]! + c1 * b[j]!
}

const sum3 = (out: Float32Array, x: ReadonlyArray<Float32Array>, c: ArrayLike<number>, start: number, end: number): void => {
  const a = x[0]!, b = x[1]!, d = x[2]!
  const c0 = c[0]!, c1 = c[1]!, c2 = c[2]!
  for (let j = start; j < end; j++) out[j] = c0 * a[j]! + c1 * b[j]! + c2 * d[j]!
}

const sum4 = (out: Float32Array, x: ReadonlyArray<Float32Array>, c: ArrayLike<number>, start: number, end: number): void => {
  const a = x[0]!, b = x[1]!, d = x[2]!, e = x[3]!
  const c0 = c[0]!, c1 = c[1]!, c2 = c[2]!, c3 = c[3]!
  for (let j = start; j < end; j++) out[j] = c0 * a[j]! + c1 * b[j]! + c2 * d[j]! + c3 * e[j]!
}

// More than four inputs: four at a time into a float64 chunk, which keeps the left-to-right
// order ((c₀x₀ + c₁x₁) + …) of the unrolled paths and of the SIMD kernel.
const sumMany = (out: Float32Array, x: ReadonlyArray<Float32Array>, c: ArrayLike<number>, start: number, end: number): void => {
  const acc = new Float64Array(Math.min(CHUNK, Math.max(0, end - start)))
  for (let j0 = start; j0 < end; j0 += CHUNK) {
    const m = Math.min(CHUNK, end - j0)
    {
      const a = x[0]!, b = x[1]!, d = x[2]!, e = x[3]!
      const c0 = c[0]!, c1 = c[1]!, c2 = c[2]!, c3 = c[3]!
      for (let k = 0, j = j0; k < m; k++, j++) acc[k] = c0 * a[j]! + c1 * b[j]! + c2 * d[j]! + c3 * e[j]!
    }
    let i = 4
    for (; i + 4 <= x.length; i += 4) {
      const a = x[i]!, b = x[i + 1]!, d = x[i + 2]!, e = x[i + 3]!
      const c0 = c[i]!, c1 = c[i + 1]!, c2 = c[i + 2]!, c3 = c[i + 3]!
      for (let k = 0, j = j0; k < m; k++, j++) acc[k] = acc[k]! + c0 * a[j]! + c1 * b[j]! + c2 * d[j]! + c3 * e[j]!
    }
    for (; i < x.length; i++) {
      const a = x[i]!, c0 = c[i]!
      for (let k = 0, j = j0; k < m; k++, j++) acc[k] = acc[k]! + c0 * a[j]!
    }
    for (let k = 0, j = j0; k < m; k++, j++) out[j] = acc[k]!
  }
}

/**
 * The coefficients of `base + Σᵢ cᵢ·(xᵢ − base)` as a plain weighted sum over `[base, x₀, x₁, …]`:
 * `[1 − Σ cᵢ, c₀, c₁, …]`. Task-vector merges use it so they run in the same loop.
 *
 * @category coefficients
 */
export const overBase = (taskCoefficients: ReadonlyArray<number>): Array<number> => {
  let total = 0
  for (const c of taskCoefficients) total += c
  return [1 - total, ...taskCoefficients]
}
