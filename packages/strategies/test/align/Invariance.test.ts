import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Permute from "../../src/align/Permute.ts"
import * as Spec from "../../src/align/PermutationSpec.ts"
import { cnn, maxAbsDifference, mlp, mnistRows, type Network, preNormMlp, randomInputs, randomPermutations, resnet } from "./Reference.ts"

const networks: ReadonlyArray<[string, Network]> = [
  ["MLP 784-32-24-10", mlp([784, 32, 24, 10])],
  ["CNN conv-conv-flatten-fc-fc", cnn],
  ["ResNet with BatchNorm (eval) and LayerNorm", resnet],
  ["pre-norm residual MLP with LayerNorms", preNormMlp]
]

const permuted = (network: Network, seed: number, spec: Spec.PermutationSpec = network.spec) =>
  Effect.runSync(Effect.gen(function* () {
    const params = network.params(seed)
    const resolved = yield* Spec.resolve(network.spec, params)
    const permutations = randomPermutations(seed + 1, resolved.permutations)
    return { params, permutations, permutedParams: yield* Permute.apply(params, spec, permutations) }
  }))

const inputsFor = (network: Network) => [
  ...randomInputs(7, 6, network.inputSize),
  ...(network.inputSize === 784 ? mnistRows([0, 3, 7], 1) : [])
]

describe("a permuted model computes the same function (float64 forward passes)", () => {
  for (const [label, network] of networks) {
    it(label, () => {
      const { params, permutations, permutedParams } = permuted(network, 100)
      assert.isTrue([...permutations.values()].some((p) => p.some((v, i) => v !== i)), "the permutations are not all identity")
      let changedWeights = false
      for (const [name, p] of params) if (p.data.some((v, k) => v !== permutedParams.get(name)!.data[k])) changedWeights = true
      assert.isTrue(changedWeights)
      for (const input of inputsFor(network)) {
        const expected = network.forward(params, input)
        const actual = network.forward(permutedParams, input)
        assert.isBelow(maxAbsDifference(expected, actual), 1e-4)
        // Only the summation order changes: float64 agrees far below the required 1e-4.
        assert.isBelow(maxAbsDifference(expected, actual), 1e-10)
      }
    })
  }

  it("and the check is sensitive: leaving one axis out of the spec changes the logits", () => {
    for (const [label, network] of networks) {
      // Drop the last (tensor, axis) of every permutation: the units no longer line up.
      const broken: Spec.PermutationSpec = Object.fromEntries(
        Object.entries(network.spec).flatMap(([name, refs]) => (refs.length > 1 ? [[name, refs.slice(0, -1)]] : []))
      )
      const { params, permutedParams } = permuted(network, 100, broken)
      const worst = Math.max(...inputsFor(network).map((input) => maxAbsDifference(network.forward(params, input), network.forward(permutedParams, input))))
      assert.isAbove(worst, 1e-3, label)
    }
  })
})
