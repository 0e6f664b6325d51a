/**
 * What a generalized task-arithmetic merge (TIES, DARE, breadcrumbs, DELLA) reports about one
 * tensor, gathered while `TaskArithmetic.apply` runs, on chunks already in cache — no second
 * pass over the tensor:
 *
 * - `kept.i`: the fraction of model i's entries that sparsification keeps (a rank window's width
 *   for TIES and breadcrumbs, the survivors of the draws for DARE and DELLA),
 * - `agreement` (with sign consensus): the fraction of kept entries whose contribution wᵢ·S(τᵢ)
 *   has the elected sign (an entry that is exactly 0 agrees with neither sign),
 * - `tau_norm.i`: ‖τᵢ‖₂ = ‖θᵢ − base‖₂ (τ in float32 as the kernel computes it, squares in float64).
 *
 * Counts are integers, exact in any order. Squares are summed per block of `Gram.BLOCK` elements
 * aligned from index 0 and the blocks added in order, as `Gram.ts` does, so a pool that splits a
 * tensor on block boundaries (as `Pool.split` does) reports the same numbers as one thread.
 *
 * @since 0.1.0
 */
import { BLOCK, blockCount } from "./Gram.ts"
import type { ChunkWork, Selector } from "./Sparsify.ts"
import type { TaskArithmeticPlan } from "./TaskArithmetic.ts"

/** The sums of one element range, combined by {@link summarize}. @category models */
export interface Partial {
  /** Per model: kept entries of the random selectors (the others' come from the plan). */
  readonly kept: Float64Array
  /** Per model: kept entries that agree with the elected sign (zero without consensus). */
  readonly agree: Float64Array
  /** Per block of the range, per model (block-major): Σ τ². */
  readonly squares: Float64Array
}

/** The numbers of a tensor, as span-event attributes (`kept.0`, `tau_norm.0`, `agreement`). @category models */
export type Diagnostics = Readonly<Record<string, number>>

/** Empty sums for `models` models over `[start, end)` (`start` a multiple of `block` for split-invariant squares). @category constructors */
export const empty = (models: number, start: number, end: number, block = BLOCK): Partial => ({
  kept: new Float64Array(models),
  agree: new Float64Array(models),
  squares: new Float64Array(blockCount(start, end, block) * models)
})

/**
 * Adds one chunk of model `model` to `partial`: `squares` is Σ τ² over it and `work` the
 * sparsify step's scratch (its `kept` count, for the random selectors); `at` is the chunk's first
 * index in the range (a chunk never straddles a block: chunks are a divisor of the block long).
 * A rank window keeps exactly its width, `all` every entry and `none` none: {@link summarize}
 * takes those from the plan.
 *
 * @category accumulate
 */
export const addChunk = (partial: Partial, model: number, at: number, squares: number, selector: Selector, work: ChunkWork, block = BLOCK): void => {
  const models = partial.kept.length
  const slot = Math.floor(at / block) * models + model
  partial.squares[slot] = partial.squares[slot]! + squares
  if (selector.kind === "random" || selector.kind === "della") partial.kept[model] = partial.kept[model]! + work.kept
}

/**
 * The diagnostics of a tensor of `n` elements from the partials of its ranges, in range order.
 * Kept counts of the deterministic selectors come from `plan` (a rank window keeps its width).
 *
 * @category summarize
 */
export const summarize = (plan: TaskArithmeticPlan, parts: ReadonlyArray<Partial>, n: number): Diagnostics => {
  const models = plan.models.length
  const out: Record<string, number> = {}
  let kept = 0
  let agree = 0
  for (let i = 0; i < models; i++) {
    const selector = plan.models[i]!.selector
    let k = selector.kind === "all" ? n : selector.kind === "ranks" ? Math.max(0, Math.min(n, selector.hi) - Math.max(0, selector.lo)) : 0
    let squares = 0
    for (const p of parts) {
      k += p.kept[i]!
      agree += p.agree[i]!
    }
    // Blocks in order, whatever ranges they came in.
    for (const p of parts) for (let q = i; q < p.squares.length; q += models) squares += p.squares[q]!
    kept += k
    out[`kept.${i}`] = n === 0 ? 0 : k / n
    out[`tau_norm.${i}`] = Math.sqrt(squares)
  }
  if (plan.consensus !== "none") out.agreement = kept === 0 ? 1 : agree / kept
  return out
}
