/**
 * Git Re-Basin weight matching (Ainsworth et al. 2022, https://arxiv.org/abs/2209.04836, Alg. 1):
 * find permutations π of model B's hidden units maximising `Σ_t ⟨A_t, π(B_t)⟩` over the tensors of
 * a permutation spec. Coordinate descent: each step fixes all permutations but one, `p`, for which
 * the objective is linear, `Σᵢ S_p[i, p(i)]`, and solves that linear assignment exactly. Sweeps
 * visit the permutations in a seeded random order until one sweep changes nothing.
 *
 * A step keeps the old permutation unless the new one scores strictly higher, so the objective
 * never decreases (with one exception, a tensor with two axes on the same permutation, for which a
 * step is not exact; the reference method has the same approximation) and ties cannot cycle.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { type AlignError, InvalidPermutation, InvalidScores } from "./AlignError.ts"
import * as Gemm from "./internal/Gemm.ts"
import * as Scores from "./internal/Scores.ts"
import * as Random from "./internal/Random.ts"
import * as Lap from "./Lap.ts"
import { checkSameShapes, checkTensors, type Params } from "./Params.ts"
import { type PermutationSpec, type Resolved, resolve } from "./PermutationSpec.ts"
import { applyResolved, identity, isPermutation, type Permutation, type Permutations } from "./Permute.ts"

/** @category models */
export interface Options {
  /** Seeds the order in which each sweep visits the permutations. Default 0. */
  readonly seed?: number
  /** Stops after this many sweeps even if the last one still improved. Default 100. */
  readonly maxSweeps?: number
  /** Starting permutations for some or all names (the others start at identity), e.g. activation matching's result. */
  readonly initial?: Permutations
}

/** @category models */
export interface Result {
  /** Applied to model B with `Permute.apply`, these put B into A's basin. */
  readonly permutations: Permutations
  /** `Σ_t ⟨A_t, π(B_t)⟩` over the spec's tensors: before the first sweep, then after each sweep. */
  readonly objective: ReadonlyArray<number>
  /** Sweeps run, including the last one that found nothing to improve. */
  readonly sweeps: number
  /** False when `maxSweeps` ended the search while it was still improving. */
  readonly converged: boolean
}

/**
 * Aligns `b` to `a` over `spec`. Fails when the spec does not fit model A (`SpecMismatch`), when
 * B lacks a tensor of A or shapes differ, or a weight is not finite (`InvalidParams`), or when a
 * starting permutation is malformed (`InvalidPermutation`).
 *
 * @category matching
 */
export const match = Effect.fn("WeightMatching.match")(function* (
  a: Params,
  b: Params,
  spec: PermutationSpec,
  options?: Options
): Effect.fn.Return<Result, AlignError> {
  const resolved = yield* resolve(spec, a)
  const tensors = [...resolved.byTensor.keys()]
  yield* checkSameShapes(a, b, tensors)
  yield* checkTensors(a, tensors, "a")
  yield* checkTensors(b, tensors, "b")
  const permutations = new Map<string, Permutation>(
    resolved.permutations.map(({ name, size }) => [name, identity(size)])
  )
  for (const [name, p] of options?.initial ?? []) {
    const size = permutations.get(name)?.length
    if (size === undefined) return yield* new InvalidPermutation({ permutation: name, detail: "is not a permutation of the spec" })
    if (!isPermutation(p, size)) return yield* new InvalidPermutation({ permutation: name, detail: `is not a bijection of 0..${size - 1}` })
    permutations.set(name, Int32Array.from(p))
  }
  const gemm = Gemm.make()
  const coordinates = resolved.permutations.map(({ name, size, axes }): Coordinate => ({
    name,
    scores: Scores.make(gemm, size, axes, resolved.byTensor, a, b),
    potentials: undefined
  }))
  const random = Random.make(options?.seed ?? 0)
  const maxSweeps = options?.maxSweeps ?? 100
  const objective = [objectiveOf(a, b, resolved, permutations)]
  let sweeps = 0
  let converged = false
  while (sweeps < maxSweeps && !converged) {
    sweeps++
    let changed = false
    for (const index of Random.permutation(random, coordinates.length)) {
      changed = (yield* step(coordinates[index]!, permutations)) || changed
      // Lets the scheduler interrupt a long matching between steps.
      yield* Effect.yieldNow
    }
    objective.push(objectiveOf(a, b, resolved, permutations))
    converged = !changed
  }
  yield* Effect.annotateCurrentSpan({
    "crucible.align.permutations": coordinates.length,
    "crucible.align.sweeps": sweeps,
    "crucible.align.converged": converged,
    "crucible.align.objective": objective[objective.length - 1]
  })
  return { permutations, objective, sweeps, converged }
})

/** A permutation's score matrix and the column potentials of its last solve (warm start). */
interface Coordinate {
  readonly name: string
  readonly scores: Scores.Scores
  potentials: Float64Array | undefined
}

/** Re-solves one permutation; true when it changed. */
const step = (coordinate: Coordinate, permutations: Map<string, Permutation>) =>
  Effect.gen(function* () {
    const { name, scores } = coordinate
    const moved = Scores.update(scores, permutations)
    // Same matrix as at this permutation's last solve: that solve's answer still stands.
    if (!moved && coordinate.potentials !== undefined) return false
    const n = scores.size
    const current = permutations.get(name)!
    const { before, scale } = scoreOf(scores.matrix, n, current)
    // Inputs are finite, so only float64 overflow can get here; the solver needs finite scores.
    if (!Number.isFinite(scale)) {
      return yield* new InvalidScores({ n, detail: `permutation "${name}": a score overflowed float64; the weights are too large` })
    }
    const solved = Lap.maximizeUnchecked(scores.matrix, n, coordinate.potentials === undefined ? undefined : { warmStart: coordinate.potentials })
    coordinate.potentials = solved.columnPotential
    // Rounding in S is ~1e-16 relative per entry; anything below this margin is a tie.
    if (solved.score <= before + 1e-12 * n * scale) return false
    permutations.set(name, solved.columnOf)
    return true
  })

/** The current permutation's score and the largest |score| (NaN when a score is not finite). */
const scoreOf = (matrix: Float64Array, n: number, current: Int32Array): { before: number; scale: number } => {
  let before = 0
  let scale = 0
  for (let i = 0; i < n; i++) {
    before += matrix[i * n + current[i]!]!
    for (let j = i * n; j < i * n + n; j++) {
      const magnitude = Math.abs(matrix[j]!)
      // `!(x <= y)` is true for NaN too, which then sticks.
      if (!(magnitude <= scale)) scale = magnitude
    }
  }
  return { before, scale }
}

/** `Σ_t ⟨A_t, π(B_t)⟩` over the spec's tensors, in float64. */
const objectiveOf = (a: Params, b: Params, resolved: Resolved, permutations: Permutations): number => {
  const permuted = applyResolved(b, resolved, permutations)
  let total = 0
  for (const tensor of resolved.byTensor.keys()) {
    const x = a.get(tensor)!.data
    const y = permuted.get(tensor)!.data
    for (let k = 0; k < x.length; k++) total += x[k]! * y[k]!
  }
  return total
}
