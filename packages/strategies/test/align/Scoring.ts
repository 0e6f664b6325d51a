/**
 * Test support: the weight-matching score matrix of one permutation computed the slow, obvious
 * way, in float64, from the definition `S[i, j] = Σ ⟨A_t[unit i], π(B_t)[unit j]⟩`.
 */
import { Effect } from "effect"
import type { Params } from "../../src/align/Params.ts"
import * as Permute from "../../src/align/Permute.ts"
import type { PermutationSpec, ResolvedPermutation } from "../../src/align/PermutationSpec.ts"

/**
 * B is permuted by `permutations` on every axis except those of `target`; then every element of A
 * whose coordinate on a `target` axis belongs to unit i is multiplied with the element of B at the
 * same coordinates but unit j.
 */
export const naiveScores = (
  a: Params,
  b: Params,
  spec: PermutationSpec,
  target: ResolvedPermutation,
  permutations: Permute.Permutations
): Float64Array => {
  const others = new Map(permutations)
  others.set(target.name, Permute.identity(target.size))
  const permutedB = Effect.runSync(Permute.apply(b, spec, others))
  const n = target.size
  const scores = new Float64Array(n * n)
  for (const { tensor, axis, inner } of target.axes) {
    const { shape, data } = a.get(tensor)!
    const y = permutedB.get(tensor)!.data
    const stride = shape.slice(axis + 1).reduce((s, d) => s * d, 1)
    for (let e = 0; e < data.length; e++) {
      const c = Math.floor(e / stride) % shape[axis]!
      const i = Math.floor(c / inner) % n
      for (let j = 0; j < n; j++) scores[i * n + j] = scores[i * n + j]! + data[e]! * y[e + (j - i) * inner * stride]!
    }
  }
  return scores
}

/** `Σ_t ⟨A_t, π(B_t)⟩` over the tensors of the spec, in float64. */
export const naiveObjective = (a: Params, b: Params, spec: PermutationSpec, permutations: Permute.Permutations): number => {
  const permutedB = Effect.runSync(Permute.apply(b, spec, permutations))
  const tensors = new Set(Object.values(spec).flatMap((refs) => refs.map((r) => r.tensor)))
  let total = 0
  for (const tensor of tensors) {
    const x = a.get(tensor)!.data
    const y = permutedB.get(tensor)!.data
    for (let k = 0; k < x.length; k++) total += x[k]! * y[k]!
  }
  return total
}
