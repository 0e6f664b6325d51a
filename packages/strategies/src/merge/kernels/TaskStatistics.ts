/**
 * The whole-tensor statistics of generalized task arithmetic: the magnitude cuts of TIES and
 * breadcrumbs (`Select.ts`) and the L1 norms of mergekit's `rescale`. Each is computed on ranges
 * whose results combine exactly (integer counts; float64 sums over fixed blocks added in order),
 * so {@link prepare} here and a pool's split version give the same {@link Prepared} plan.
 *
 * @since 0.1.0
 */
import { BLOCK, blockCount } from "./Gram.ts"
import * as Select from "./Select.ts"
import { applyChunk, ChunkWork, type Selector } from "./Sparsify.ts"
import type { Prepared, TaskArithmeticPlan } from "./TaskArithmetic.ts"

/** Below this, mergekit leaves a masked tensor unscaled rather than divide by ~0. */
const L1_EPS = 1e-7

/**
 * Per block of `block` elements on `[start, end)` (start a multiple of `block`): `[‖τ‖₁, ‖kept τ‖₁]`
 * for one model's selector, as float64, 2 values per block.
 *
 * @category statistics
 */
export const l1Partials = (
  selector: Selector,
  x: Float32Array,
  base: Float32Array,
  start: number,
  end: number,
  offset = 0,
  block = BLOCK
): Float64Array => {
  const blocks = blockCount(start, end, block)
  const out = new Float64Array(2 * blocks)
  const chunk = Math.min(2048, block)
  const v = new Float64Array(chunk)
  const work = new ChunkWork(chunk)
  for (let q = 0; q < blocks; q++) {
    const b0 = start + q * block
    const b1 = Math.min(end, b0 + block)
    let before = 0
    let after = 0
    for (let j0 = b0; j0 < b1; j0 += chunk) {
      const m = Math.min(chunk, b1 - j0)
      applyChunk(selector, false, 1, x, base, j0, m, offset, v, work)
      const tau = work.tau
      for (let k = 0; k < m; k++) {
        before += Math.abs(tau[k]!)
        after += Math.abs(v[k]!)
      }
    }
    out[2 * q] = before
    out[2 * q + 1] = after
  }
  return out
}

/** mergekit's L1 rescale factor from the combined partials (ranges in order). @category statistics */
export const l1Factor = (parts: ReadonlyArray<Float64Array>): number => {
  let before = 0
  let after = 0
  for (const p of parts) {
    for (let q = 0; q < p.length; q += 2) {
      before += p[q]!
      after += p[q + 1]!
    }
  }
  return before < L1_EPS || after < L1_EPS ? 1 : before / after
}

/**
 * Completes a plan with its statistics, single-threaded: magnitude cuts for the models that need
 * them, then the L1 factors. `offset` is the tensor index of array element 0.
 *
 * @category statistics
 */
export const prepare = (plan: TaskArithmeticPlan, base: Float32Array, models: ReadonlyArray<Float32Array>, offset = 0): Prepared => {
  const selectors = plan.models.map((m, i): Selector => {
    if (m.selector.kind !== "ranks") return m.selector
    const [lo, hi] = Select.cuts(models[i]!, base, [m.selector.lo, m.selector.hi], offset)
    return { kind: "window", lo: lo!, hi: hi! }
  })
  return finish(plan, selectors, (i) => [l1Partials(selectors[i]!, models[i]!, base, 0, base.length, offset)])
}

/** Builds the {@link Prepared} plan from selectors and (when `rescale` is `l1`) each model's L1 partials. @category statistics */
export const finish = (
  plan: TaskArithmeticPlan,
  selectors: ReadonlyArray<Selector>,
  l1: (model: number) => ReadonlyArray<Float64Array>
): Prepared => ({
  plan,
  selectors,
  factors: plan.models.map((m, i) => (plan.rescale === "l1" ? m.weight * l1Factor(l1(i)) : m.weight))
})
