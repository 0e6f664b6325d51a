/**
 * Model stock (Jang et al. 2024, https://arxiv.org/abs/2403.19522), as mergekit computes it:
 * `θ = t·mean(θᵢ) + (1−t)·θ₀` with `t = N·cos / (1 + (N−1)·cos)`, where cos is the mean pairwise
 * cosine of the task vectors `θᵢ − θ₀` (each clamped to [−1, 1], norms products floored at 1e-6)
 * and N ≥ 2 fine-tuned models besides the base.
 *
 * With `filterWise`, t is computed per row (per output filter: a row is `numel / shape[0]`
 * elements; a 1-D tensor is one row), as mergekit's `filter_wise` does for 1-D and 2-D tensors.
 * Two phases: {@link statistics} (per-row Gram matrices, splittable with `Gram.partials`), then
 * {@link plan} and {@link apply} on any ranges.
 *
 * @since 0.1.0
 */
import { Result } from "effect"
import * as Gram from "./Gram.ts"
import { DegenerateMerge, MergeInputMismatch, type MergeKernelError } from "./KernelError.ts"
import { weightedSum } from "./WeightedSum.ts"

/** @category params */
export interface ModelStockParams {
  /** One t per row instead of one per tensor (default false). */
  readonly filterWise?: boolean
}

/** @category plans */
export interface ModelStockPlan {
  /** Elements per row (the whole tensor when not filter-wise). */
  readonly rowLength: number
  /** Per row: the N + 1 coefficients over `[base, ...models]`. */
  readonly coefficients: Float64Array
  /** The t of each row. */
  readonly t: Float64Array
}

const METHOD = "model-stock"

/** The row length {@link statistics} and {@link plan} use for a tensor of `shape`. */
export const rowLength = (shape: ReadonlyArray<number>, params: ModelStockParams): number => {
  const n = shape.reduce((a, b) => a * b, 1)
  return params.filterWise === true && shape.length >= 2 ? n / shape[0]! : n
}

/** Per-row Gram matrices of the task vectors (rows × N²). @category statistics */
export const statistics = (models: ReadonlyArray<Float32Array>, base: Float32Array, rowLen: number): Float64Array =>
  Gram.partials(models, base, 0, base.length, Math.max(1, rowLen))

/** The interpolation factor of each row, then its coefficients. @category plans */
export const plan = (grams: Float64Array, models: number, rowLen: number, tensor: string): Result.Result<ModelStockPlan, MergeKernelError> => {
  if (models < 2) {
    return Result.fail(new MergeInputMismatch({ method: METHOD, tensor, detail: `needs a base and at least 2 other models, got ${models} besides the base` }))
  }
  const size = models * models
  const rows = grams.length / size
  const t = new Float64Array(rows)
  const coefficients = new Float64Array(rows * (models + 1))
  for (let r = 0; r < rows; r++) {
    const g = grams.subarray(r * size, (r + 1) * size)
    let sum = 0
    let pairs = 0
    for (let i = 0; i < models; i++) {
      for (let k = i + 1; k < models; k++) {
        const normProduct = Math.sqrt(g[i * models + i]!) * Math.sqrt(g[k * models + k]!)
        sum += Math.min(1, Math.max(-1, g[i * models + k]! / Math.max(normProduct, 1e-6)))
        pairs++
      }
    }
    const cos = sum / pairs
    const denominator = 1 + (models - 1) * cos
    if (Math.abs(denominator) < 1e-12) {
      return Result.fail(new DegenerateMerge({ method: METHOD, tensor, detail: `mean cosine ${cos} makes t = N·cos/(1+(N−1)·cos) infinite (row ${r})` }))
    }
    const tr = (models * cos) / denominator
    t[r] = tr
    const c = coefficients.subarray(r * (models + 1), (r + 1) * (models + 1))
    c[0] = 1 - tr
    for (let i = 1; i <= models; i++) c[i] = tr / models
  }
  return Result.succeed({ rowLength: rowLen, coefficients, t })
}

/** Writes the merge on `[start, end)`, row by row (`sum` may be the SIMD weighted sum). @category kernels */
export const apply = (
  plan: ModelStockPlan,
  out: Float32Array,
  base: Float32Array,
  models: ReadonlyArray<Float32Array>,
  start = 0,
  end = out.length,
  sum: typeof weightedSum = weightedSum
): void => {
  const inputs = [base, ...models]
  const width = models.length + 1
  const rowLen = Math.max(1, plan.rowLength)
  for (let r = Math.floor(start / rowLen); r * rowLen < end; r++) {
    const from = Math.max(start, r * rowLen)
    const to = Math.min(end, (r + 1) * rowLen)
    sum(out, inputs, plan.coefficients.subarray(r * width, (r + 1) * width), from, to)
  }
}
