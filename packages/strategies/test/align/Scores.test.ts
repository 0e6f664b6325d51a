import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { Permutation } from "../../src/align/Permute.ts"
import * as Spec from "../../src/align/PermutationSpec.ts"
import * as Gemm from "../../src/align/internal/Gemm.ts"
import * as Random from "../../src/align/internal/Random.ts"
import * as Scores from "../../src/align/internal/Scores.ts"
import { cnn, type Network, randomPermutations, resnet } from "./Reference.ts"
import { naiveScores } from "./Scoring.ts"

/** Swaps `count` random pairs of units: a small change, which `update` corrects instead of rebuilding. */
const swapSome = (random: Random.Random, p: Permutation, count: number): Permutation => {
  const q = Int32Array.from(p)
  for (let s = 0; s < count; s++) {
    const i = random.int(q.length)
    const j = random.int(q.length)
    const t = q[i]!
    q[i] = q[j]!
    q[j] = t
  }
  return q
}

const check = (network: Network, kernels: Gemm.Gemm) => {
  // Counts which path each update took, delegating the arithmetic to the real kernels.
  const calls = { rebuild: 0, correction: 0 }
  const gemm: Gemm.Gemm = {
    kind: kernels.kind,
    addABt: (...args) => (calls.rebuild++, kernels.addABt(...args)),
    addABtDifference: (...args) => (calls.correction++, kernels.addABtDifference(...args))
  }
  const a = network.params(1)
  const b = network.params(2)
  const resolved = Effect.runSync(Spec.resolve(network.spec, a))
  const random = Random.make(3)
  const permutations = new Map(randomPermutations(4, resolved.permutations))
  const caches = resolved.permutations.map((p) => Scores.make(gemm, p.size, p.axes, resolved.byTensor, a, b))
  // Rounds of: small changes (corrections), no change, then a full reshuffle (a rebuild).
  for (let round = 0; round < 6; round++) {
    for (const p of resolved.permutations) {
      const current = permutations.get(p.name)!
      if (round === 5) permutations.set(p.name, Random.permutation(random, p.size))
      else if (round !== 3) permutations.set(p.name, swapSome(random, current, 1 + random.int(2)))
    }
    resolved.permutations.forEach((p, index) => {
      const cache = caches[index]!
      const moved = Scores.update(cache, permutations)
      if (round === 3) assert.isFalse(moved, "nothing moved, nothing recomputed")
      const expected = naiveScores(a, b, network.spec, p, permutations)
      const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0)
      for (let q = 0; q < expected.length; q++) assert.closeTo(cache.matrix[q]!, expected[q]!, 1e-12 * scale, `${p.name} round ${round} cell ${q}`)
    })
  }
  assert.isAbove(calls.correction, 0, "small changes were corrected")
  assert.isAbove(calls.rebuild, 0)
}

describe("Scores: the cached, incrementally corrected score matrices equal the definition", () => {
  for (const gemm of [Gemm.make(), Gemm.js]) {
    it(`CNN with a flatten into dense (${gemm.kind})`, () => check(cnn, gemm))
    it(`ResNet with BatchNorm, projection shortcut and LayerNorm (${gemm.kind})`, () => check(resnet, gemm))
  }
})
