/**
 * RegMean (Jin et al. 2023, https://arxiv.org/abs/2212.09849) for one linear layer:
 * `W = (Σᵢ Wᵢ G̃ᵢ)(Σᵢ G̃ᵢ)⁻¹` where `Gᵢ = XᵢᵀXᵢ` is the Gram matrix of the layer's inputs in
 * model i and `G̃ᵢ = α·Gᵢ + (1−α)·diag(Gᵢ)` shrinks the off-diagonal entries (α = 1: exact
 * least squares on the union of the inputs; α = 0: a per-input-feature weighted average).
 *
 * Weights are `[out, in]` row-major (PyTorch's `nn.Linear.weight`), Gram matrices `[in, in]`.
 * Everything is float64: the sums, the Cholesky factor of Σ G̃ᵢ (with diagonal jitter when it is
 * only semi-definite, e.g. an input feature that is always 0) and the `out` triangular solves.
 *
 * @since 0.1.0
 */
import { Result } from "effect"
import * as Cholesky from "./Cholesky.ts"
import { DegenerateMerge, InvalidMergeParameter, MergeInputMismatch, type MergeKernelError } from "./KernelError.ts"

/** @category params */
export interface RegMeanParams {
  /** Scale of the off-diagonal Gram entries, in [0, 1]. */
  readonly alpha: number
}

/** @category models */
export interface RegMeanResult {
  /** The merged `[out, in]` weight. */
  readonly weight: Float32Array
  /** The diagonal jitter the solver needed (0 when Σ G̃ᵢ was positive definite). */
  readonly jitter: number
}

const METHOD = "regmean"

/** Largest |G − Gᵀ| tolerated, relative to the largest |G|. */
const SYMMETRY_TOLERANCE = 1e-6

/**
 * Merges one linear layer. `weights[i]` is `[rows, columns]`, `grams[i]` is `[columns, columns]`
 * and symmetric.
 *
 * @category kernels
 */
export const merge = (
  params: RegMeanParams,
  weights: ReadonlyArray<ArrayLike<number>>,
  grams: ReadonlyArray<ArrayLike<number>>,
  rows: number,
  columns: number,
  tensor: string
): Result.Result<RegMeanResult, MergeKernelError> => {
  const mismatch = (detail: string) => Result.fail(new MergeInputMismatch({ method: METHOD, tensor, detail }))
  const { alpha } = params
  if (!(alpha >= 0 && alpha <= 1)) {
    return Result.fail(new InvalidMergeParameter({ method: METHOD, tensor, parameter: "alpha", detail: `must lie in [0, 1], got ${alpha}` }))
  }
  if (weights.length === 0) return mismatch("no models to merge")
  if (grams.length !== weights.length) return mismatch(`${grams.length} Gram matrices for ${weights.length} models`)
  for (let i = 0; i < weights.length; i++) {
    if (weights[i]!.length !== rows * columns) return mismatch(`weight ${i} has ${weights[i]!.length} elements, expected ${rows}×${columns}`)
    if (grams[i]!.length !== columns * columns) return mismatch(`Gram matrix ${i} has ${grams[i]!.length} elements, expected ${columns}×${columns}`)
    const asymmetry = asymmetryOf(grams[i]!, columns)
    if (asymmetry !== undefined) return mismatch(`Gram matrix ${i} is not symmetric (${asymmetry})`)
  }
  const shrunk = grams.map((g) => shrink(g, columns, alpha))
  const sum = new Float64Array(columns * columns)
  for (const g of shrunk) for (let e = 0; e < sum.length; e++) sum[e] = sum[e]! + g[e]!
  const f = Cholesky.factorWithJitter(sum, columns)
  if (f === undefined) {
    const detail = "the summed Gram matrix is not positive semi-definite, even with diagonal jitter"
    return Result.fail(new DegenerateMerge({ method: METHOD, tensor, detail }))
  }
  const rhs = new Float64Array(rows * columns)
  for (let i = 0; i < weights.length; i++) accumulateProduct(rhs, weights[i]!, shrunk[i]!, rows, columns)
  const weight = new Float32Array(rows * columns)
  for (let o = 0; o < rows; o++) {
    Cholesky.solveInPlace(f, rhs, o * columns)
    for (let k = 0; k < columns; k++) weight[o * columns + k] = rhs[o * columns + k]!
  }
  return Result.succeed({ weight, jitter: f.jitter })
}

/** G̃ = α·G + (1−α)·diag(G), as float64. */
const shrink = (g: ArrayLike<number>, n: number, alpha: number): Float64Array => {
  const out = new Float64Array(n * n)
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) out[i * n + k] = i === k ? g[i * n + k]! : alpha * g[i * n + k]!
  return out
}

/** rhs += W·G (`[rows, n]` · `[n, n]`), row by row so both are read contiguously. */
const accumulateProduct = (rhs: Float64Array, w: ArrayLike<number>, g: Float64Array, rows: number, n: number): void => {
  for (let o = 0; o < rows; o++) {
    const ro = o * n
    for (let k = 0; k < n; k++) {
      const wk = w[ro + k]!
      if (wk === 0) continue
      const rk = k * n
      for (let c = 0; c < n; c++) rhs[ro + c] = rhs[ro + c]! + wk * g[rk + c]!
    }
  }
}

const asymmetryOf = (g: ArrayLike<number>, n: number): string | undefined => {
  let largest = 0
  for (let e = 0; e < n * n; e++) largest = Math.max(largest, Math.abs(g[e]!))
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < i; k++) {
      const d = Math.abs(g[i * n + k]! - g[k * n + i]!)
      if (d > SYMMETRY_TOLERANCE * largest || d !== d) return `entries (${i}, ${k}) and (${k}, ${i}) differ by ${d}`
    }
  }
  return undefined
}
