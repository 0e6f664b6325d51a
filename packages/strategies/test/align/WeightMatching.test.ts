import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Lap from "../../src/align/Lap.ts"
import type { Params } from "../../src/align/Params.ts"
import * as Permute from "../../src/align/Permute.ts"
import * as Spec from "../../src/align/PermutationSpec.ts"
import * as WeightMatching from "../../src/align/WeightMatching.ts"
import * as Random from "../../src/align/internal/Random.ts"
import { cnn, mlp, type Network, preNormMlp, randomPermutations, resnet } from "./Reference.ts"
import { naiveObjective, naiveScores } from "./Scoring.ts"

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runSync(effect)

const networks: ReadonlyArray<[string, Network]> = [
  ["MLP 784-64-48-10", mlp([784, 64, 48, 10])],
  ["CNN with a flatten into dense", cnn],
  ["ResNet with BatchNorm and LayerNorm", resnet],
  ["pre-norm residual MLP", preNormMlp]
]

const assertSameParams = (actual: Params, expected: Params) => {
  for (const [name, p] of expected) assert.deepStrictEqual(actual.get(name)!.data, p.data, name)
}

describe("WeightMatching.match", () => {
  for (const [label, network] of networks) {
    it(`recovers a known permutation exactly: ${label}`, () => {
      const a = network.params(10)
      const resolved = run(Spec.resolve(network.spec, a))
      const hidden = randomPermutations(11, resolved.permutations)
      const b = run(Permute.apply(a, network.spec, hidden))
      const result = run(WeightMatching.match(a, b, network.spec, { seed: 3 }))
      assert.isTrue(result.converged)
      for (const { name } of resolved.permutations) {
        assert.deepStrictEqual(Array.from(result.permutations.get(name)!), Array.from(Permute.inverse(hidden.get(name)!)), name)
      }
      assertSameParams(run(Permute.apply(b, network.spec, result.permutations)), a)
      // Aligned B is A, so the objective ends at Σ‖A_t‖².
      assert.closeTo(result.objective.at(-1)!, naiveObjective(a, a, network.spec, new Map(resolved.permutations.map((p) => [p.name, Permute.identity(p.size)]))), 1e-9)
    })
  }

  it("recovers a permutation that acts on both axes of a square tensor (P W Pᵀ)", () => {
    const random = Random.make(12)
    const a: Params = new Map([
      ["in.weight", { shape: [16, 40], data: Random.normals(random, 640) }],
      ["rec.weight", { shape: [16, 16], data: Random.normals(random, 256) }],
      ["out.weight", { shape: [3, 16], data: Random.normals(random, 48) }]
    ])
    const spec: Spec.PermutationSpec = {
      P: [{ tensor: "in.weight", axis: 0 }, { tensor: "rec.weight", axis: 0 }, { tensor: "rec.weight", axis: 1 }, { tensor: "out.weight", axis: 1 }]
    }
    const hidden = new Map([["P", Random.permutation(random, 16)]])
    const b = run(Permute.apply(a, spec, hidden))
    const result = run(WeightMatching.match(a, b, spec))
    assertSameParams(run(Permute.apply(b, spec, result.permutations)), a)
  })

  for (const [label, network] of networks) {
    it(`aligns independent models to a coordinate-wise optimum: ${label}`, () => {
      const a = network.params(20)
      const b = network.params(21)
      const resolved = run(Spec.resolve(network.spec, a))
      const result = run(WeightMatching.match(a, b, network.spec, { seed: 5 }))
      assert.isTrue(result.converged)
      assert.strictEqual(result.objective.length, result.sweeps + 1)
      for (let s = 1; s < result.objective.length; s++) assert.isAtLeast(result.objective[s]!, result.objective[s - 1]! - 1e-9)
      assert.isAbove(result.objective.at(-1)!, result.objective[0]!)
      // The reported objective is the float64 inner product of A and the permuted B.
      const final = naiveObjective(a, b, network.spec, result.permutations)
      assert.closeTo(result.objective.at(-1)!, final, 1e-9 * Math.abs(final))
      // No single permutation can be improved: its exact LAP optimum, on score matrices computed
      // from the definition, is what the result already scores.
      for (const target of resolved.permutations) {
        const scores = naiveScores(a, b, network.spec, target, result.permutations)
        const n = target.size
        const p = result.permutations.get(target.name)!
        const current = Array.from(p).reduce((s, j, i) => s + scores[i * n + j]!, 0)
        const best = run(Lap.maximize(scores, n)).score
        assert.isAtMost(best, current + 1e-9 * Math.abs(current), target.name)
      }
    })
  }

  it("is deterministic for a seed; sweep order depends on the seed", () => {
    const network = mlp([30, 24, 24, 24, 5])
    const a = network.params(30)
    const b = network.params(31)
    const first = run(WeightMatching.match(a, b, network.spec, { seed: 1 }))
    const again = run(WeightMatching.match(a, b, network.spec, { seed: 1 }))
    assert.deepStrictEqual(again.objective, first.objective)
    for (const [name, p] of first.permutations) assert.deepStrictEqual(again.permutations.get(name), p)
    const other = run(WeightMatching.match(a, b, network.spec, { seed: 2 }))
    assert.isTrue(other.converged)
  })

  it("stops at maxSweeps, and starting from the answer needs one sweep", () => {
    const network = mlp([30, 24, 24, 5])
    const a = network.params(40)
    const b = network.params(41)
    const capped = run(WeightMatching.match(a, b, network.spec, { maxSweeps: 1 }))
    assert.strictEqual(capped.sweeps, 1)
    assert.isFalse(capped.converged)
    const full = run(WeightMatching.match(a, b, network.spec))
    const resumed = run(WeightMatching.match(a, b, network.spec, { initial: full.permutations }))
    assert.strictEqual(resumed.sweeps, 1)
    assert.isTrue(resumed.converged)
    assert.strictEqual(resumed.objective[0], full.objective.at(-1))
  })

  describe("rejects bad input with typed errors", () => {
    const network = mlp([6, 4, 3])
    const a = network.params(50)
    const fail = (b: Params, spec: Spec.PermutationSpec = network.spec, options?: WeightMatching.Options) =>
      run(Effect.flip(WeightMatching.match(a, b, spec, options)))

    it("missing tensor, other shape, non-finite weight", () => {
      const missing = new Map(a)
      missing.delete("layers.1.weight")
      let error = fail(missing)
      assert.strictEqual(error._tag, "InvalidParams")
      assert.include(error.message, `model b, tensor "layers.1.weight": missing`)
      const reshaped = new Map(a)
      reshaped.set("layers.0.bias", { shape: [2, 2], data: new Float32Array(4) })
      error = fail(reshaped)
      assert.include(error.message, "shape [2, 2] differs from model a's [4]")
      const poisoned = new Map(a)
      const data = Float32Array.from(a.get("layers.0.weight")!.data)
      data[5] = Number.NaN
      poisoned.set("layers.0.weight", { shape: [4, 6], data })
      error = fail(poisoned)
      assert.include(error.message, `tensor "layers.0.weight": element 5 is NaN`)
      const short = new Map(a)
      short.set("layers.0.weight", { shape: [4, 6], data: new Float32Array(23) })
      assert.include(fail(short).message, "needs 24 values, the data has 23")
    })

    it("a spec that does not fit, a malformed starting permutation", () => {
      const error = fail(a, { P: [{ tensor: "layers.0.weight", axis: 2 }] })
      assert.strictEqual(error._tag, "SpecMismatch")
      const start = fail(a, network.spec, { initial: new Map([["P_layers.0", Int32Array.of(0, 1, 1, 2)]]) })
      assert.strictEqual(start._tag, "InvalidPermutation")
    })
  })
})
