/**
 * Model soups (Wortsman et al. 2022): averages of fine-tuned models' weights. Pure host math
 * and the greedy selection, apart from any stage:
 *
 * - uniform soup: `θ = (1/n) Σ θᵢ`, accumulated in float64 and rounded once to float32; integer
 *   buffers (`num_batches_tracked`) are taken from the first ingredient;
 * - greedy soup: ingredients sorted by their validation score (best first, ties in input
 *   order), the soup starts as the best one, and each next ingredient is added only if the soup
 *   with it scores strictly higher on validation.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { HostTensor } from "../models/Layout.ts"
import type { Network } from "../models/Network.ts"
import type { ParamSet } from "../models/Params.ts"

/** The uniform average of parameter sets with the same tensors (validated by the caller). */
export const average = (network: Network, sets: ReadonlyArray<ParamSet>): ParamSet => {
  const out = new Map<string, HostTensor>()
  const integer = new Set(network.params.filter((p) => p.role === "num_batches_tracked").map((p) => p.name))
  for (const [name, first] of sets[0]!) {
    if (integer.has(name)) {
      out.set(name, { shape: first.shape, data: first.data.slice() })
      continue
    }
    const acc = new Float64Array(first.data.length)
    for (const set of sets) {
      const data = set.get(name)!.data
      for (let i = 0; i < acc.length; i++) acc[i]! += data[i]!
    }
    out.set(name, { shape: first.shape, data: Float32Array.from(acc, (v) => v / sets.length) })
  }
  return out
}

/** One greedy step: ingredient `index` was tried, the soup with it scored `score`. @category models */
export interface Decision {
  readonly index: number
  /** The ingredient's own validation score. */
  readonly ingredientScore: number
  /** The soup's score with the ingredient (for the first, its own score). */
  readonly score: number
  readonly kept: boolean
  /** The soup's score after the decision. */
  readonly soupScore: number
}

/** The greedy soup's ingredients and how they were chosen. @category models */
export interface GreedyResult {
  /** Kept ingredients, in the order they were added. */
  readonly chosen: ReadonlyArray<number>
  readonly decisions: ReadonlyArray<Decision>
  readonly score: number
}

/** Ingredient indices sorted by score, best first; ties keep the input order. */
export const ranking = (scores: ReadonlyArray<number>): Array<number> =>
  scores.map((s, i) => [s, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).map(([, i]) => i)

/**
 * Greedy soup selection. `scores` are the ingredients' own validation scores (higher is
 * better); `scoreSoup` scores the soup of the given ingredients; `onDecision` sees every step.
 */
export const greedy = <E, R, E2 = never, R2 = never>(
  scores: ReadonlyArray<number>,
  scoreSoup: (ingredients: ReadonlyArray<number>) => Effect.Effect<number, E, R>,
  onDecision: (decision: Decision) => Effect.Effect<void, E2, R2> = () => Effect.void
): Effect.Effect<GreedyResult, E | E2, R | R2> =>
  Effect.gen(function* () {
    const order = ranking(scores)
    const first = order[0]!
    const chosen = [first]
    let best = scores[first]!
    const decisions: Array<Decision> = [{ index: first, ingredientScore: best, score: best, kept: true, soupScore: best }]
    yield* onDecision(decisions[0]!)
    for (const index of order.slice(1)) {
      const score = yield* scoreSoup([...chosen, index])
      const kept = score > best
      if (kept) {
        chosen.push(index)
        best = score
      }
      const decision = { index, ingredientScore: scores[index]!, score, kept, soupScore: best }
      decisions.push(decision)
      yield* onDecision(decision)
    }
    return { chosen, decisions, score: best }
  })
