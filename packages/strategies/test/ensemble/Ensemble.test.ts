import { assert, describe, expect, it, layer } from "@effect/vitest"
import { Model, TensorRef } from "@crucible/core"
import { Effect } from "effect"
import { Backend } from "../../src/backend/Backend.ts"
import type { Dataset } from "../../src/data/Dataset.ts"
import * as DataSource from "../../src/data/Source.ts"
import * as Classifier from "../../src/ensemble/Classifier.ts"
import * as Combine from "../../src/ensemble/Combine.ts"
import * as Ensemble from "../../src/ensemble/Ensemble.ts"
import { EnsembleKind } from "../../src/ensemble/EnsembleStage.ts"
import { EvaluateKind } from "../../src/evaluate/EvaluateStage.ts"
import * as Metrics from "../../src/evaluate/Metrics.ts"
import * as Network from "../../src/models/Network.ts"
import * as Runnable from "../../src/models/Runnable.ts"
import { labels, mlpArch, randomParams, uniform, worstError } from "../models/fixtures.ts"
import { forward64, toParams64 } from "../models/reference.ts"
import { decodeParams } from "../decodeParams.ts"

const K = 3
const softmax64 = (z: ArrayLike<number>, row: number): Array<number> => {
  const xs = Array.from({ length: K }, (_, k) => z[row * K + k]!)
  const max = Math.max(...xs)
  const e = xs.map((x) => Math.exp(x - max))
  const s = e.reduce((a, b) => a + b, 0)
  return e.map((v) => v / s)
}

/** The fused distribution (or mean logits), written out in float64 from the definitions. */
const reference = (mode: Combine.Mode, members: ReadonlyArray<ArrayLike<number>>, n: number, weights: ReadonlyArray<number>): Array<number> => {
  const total = weights.reduce((a, b) => a + b, 0)
  const w = weights.map((x) => x / total)
  const out: Array<number> = []
  for (let i = 0; i < n; i++) {
    if (mode === "mean-logits") {
      for (let k = 0; k < K; k++) out.push(members.reduce((s, z, e) => s + w[e]! * z[i * K + k]!, 0))
      continue
    }
    const mean = Array.from({ length: K }, (_, k) => members.reduce((s, z, e) => s + w[e]! * softmax64(z, i)[k]!, 0))
    if (mode !== "vote") {
      out.push(...mean.map(Math.log))
      continue
    }
    const votes = new Array<number>(K).fill(0)
    members.forEach((z, e) => {
      const row = Array.from({ length: K }, (_, k) => z[i * K + k]!)
      votes[row.indexOf(Math.max(...row))]! += w[e]!
    })
    out.push(...votes.map((v, k) => Math.log((1 - Combine.VOTE_EPSILON) * v + Combine.VOTE_EPSILON * mean[k]!)))
  }
  return out
}

const dataset = (n: number, seed: number): Dataset => ({ name: "random", shape: [7], count: n, x: uniform(seed, n * 7), y: labels(seed + 1, n, K), classes: K })

describe("Combine", () => {
  it("every mode equals its float64 definition", () => {
    const n = 9
    const members = [uniform(1, n * K, -3, 3), uniform(2, n * K, -3, 3), uniform(3, n * K, -3, 3)]
    for (const [mode, weights] of [["mean-probs", [1, 1, 1]], ["mean-logits", [1, 1, 1]], ["weighted", [0.5, 0.3, 0.2]], ["vote", [1, 1, 1]], ["mean-probs", [2, 1, 1]]] as const) {
      const got = Combine.combine(mode, members, n, K, weights)
      expect(worstError(got, reference(mode, members, n, weights), 1e-6, 1e-5), `${mode} ${weights}`).toBeLessThan(1)
    }
  })

  it("a vote predicts the majority class even against a confident minority, and breaks ties by mean probability", () => {
    // Two members say class 0 weakly, one says class 2 with near certainty.
    const weak = [1, 0.9, 0]
    const sure = [0, 0, 20]
    const out = Combine.combine("vote", [weak, weak, sure], 1, K)
    assert.strictEqual(Array.from(out).indexOf(Math.max(...out)), 0)
    assert.strictEqual(Array.from(Combine.combine("mean-probs", [weak, weak, sure], 1, K)).indexOf(Math.max(...Combine.combine("mean-probs", [weak, weak, sure], 1, K))), 2)
    // Tie (one vote each for 0 and 2): the mean probability decides.
    const tie = Combine.combine("vote", [[3, 0, 2.9], [2, 0, 2.5]], 1, K)
    assert.strictEqual(Array.from(tie).indexOf(Math.max(...tie)), 2)
    // A proper distribution: Σ exp = 1.
    expect(Array.from(out).reduce((s, v) => s + Math.exp(v), 0)).toBeCloseTo(1, 6)
  })

  it("rejects bad weights", () => {
    expect(() => Combine.normaliseWeights(2, [1])).toThrow(/1 weights for 2 members/)
    expect(() => Combine.normaliseWeights(2, [1, -1])).toThrow(/non-negative/)
  })
})

layer(Backend.layer())("ensembles as models", (it) => {
  const member = (seed: number) =>
    Effect.gen(function* () {
      const network = yield* Network.resolve(mlpArch)
      const params = randomParams(network, seed)
      return { network, params, model: Runnable.toModel(network, params, `m${seed}`) }
    })
  const context = { id: "e", kind: "ensemble", resolvePath: (p: string) => p, runDir: "/nonexistent", cacheDir: "/nonexistent", dryRun: false }

  it.effect("the ensemble stage's bundle evaluates to the float64 fusion of its members' forward passes", () =>
    Effect.gen(function* () {
      const members = yield* Effect.forEach([11, 12, 13], member)
      const data = dataset(40, 5)
      const memberLogits = members.map((m) => forward64(m.network, toParams64(m.params), data.x, data.count).output.data)
      for (const mode of ["mean-probs", "mean-logits", "vote"] as const) {
        const bundle = yield* EnsembleKind.run({ ...context, params: decodeParams(EnsembleKind, { mode }), inputs: { models: members.map((m) => m.model) } })
        assert.isTrue(Ensemble.isEnsemble(bundle))
        assert.strictEqual(bundle.tensors.size, 3 * members[0]!.model.tensors.size)
        assert.isTrue(bundle.tensors.has("members.2.layers.0.weight"))
        const classifier = yield* Classifier.fromModel(bundle, undefined, (p) => p)
        const got = yield* Classifier.logits(classifier, data, 16)
        const want = reference(mode, memberLogits, data.count, [1, 1, 1])
        expect(worstError(got, want, 1e-4, 1e-4), mode).toBeLessThan(1)
        const evaluated = yield* Classifier.evaluate(classifier, data)
        assert.strictEqual(evaluated.accuracy, Metrics.fromLogits(want, data.y, K).accuracy)
      }
    })
  )

  it.effect("the evaluate stage accepts an ensemble bundle (Iris)", () =>
    Effect.gen(function* () {
      const network = yield* Network.resolve({ type: "mlp", layers: [4, 6, 3] })
      const members = [31, 32, 33].map((seed) => ({ params: randomParams(network, seed), model: Runnable.toModel(network, randomParams(network, seed), `iris${seed}`) }))
      const bundle = yield* EnsembleKind.run({ ...context, params: decodeParams(EnsembleKind, { mode: "mean-probs" }), inputs: { models: members.map((m) => m.model) } })
      const evaluated = yield* EvaluateKind.run({ ...context, id: "ev", kind: "evaluate", params: decodeParams(EvaluateKind, { data: "iris", split: "test" }), inputs: { model: bundle } })
      const data = yield* DataSource.load("iris", "test", (p) => p)
      const want = reference("mean-probs", members.map((m) => forward64(network, toParams64(m.params), data.x, data.count).output.data), data.count, [1, 1, 1])
      const metrics = Metrics.fromLogits(want, data.y, K)
      assert.strictEqual(evaluated.values.accuracy, metrics.accuracy)
      expect(evaluated.values.loss as number).toBeCloseTo(metrics.loss, 4)
    })
  )

  it.effect("a bundle survives a round trip through its tensors and metadata, and bad bundles are typed errors", () =>
    Effect.gen(function* () {
      const members = yield* Effect.forEach([21, 22], member)
      const bundle = yield* Ensemble.make("b", members.map((m) => m.model), "weighted", [3, 1])
      const copy = Model.make("copy", bundle.tensors.values(), bundle.metadata)
      const { spec, members: decoded } = yield* Ensemble.decode(copy)
      assert.deepStrictEqual(spec, { mode: "weighted", weights: [0.75, 0.25], members: 2 })
      const original = yield* TensorRef.readFloat32(members[1]!.model.tensors.get("layers.1.bias")!)
      assert.deepStrictEqual(yield* TensorRef.readFloat32(decoded[1]!.tensors.get("layers.1.bias")!), original)

      const stray = Model.make("stray", [...bundle.tensors.values(), TensorRef.fromBytes("extra", "F32", [1], new Uint8Array(4))], bundle.metadata)
      const malformed = yield* Effect.flip(Ensemble.decode(stray))
      assert.strictEqual(malformed.reason, "Malformed")
      expect(malformed.message).toMatch(/"extra" belongs to no member/)
      const noWeights = yield* Effect.flip(Ensemble.make("b", members.map((m) => m.model), "weighted"))
      expect(noWeights.message).toMatch(/weighted needs weights/)
      const nested = yield* Effect.flip(Ensemble.make("b", [bundle], "mean-probs"))
      assert.strictEqual(nested.reason, "Nested")
      const other = yield* Network.resolve({ type: "mlp", layers: [7, 4, 5] })
      const mismatch = yield* Effect.flip(EnsembleKind.run({ ...context, params: decodeParams(EnsembleKind, {}), inputs: { models: [members[0]!.model, Runnable.toModel(other, randomParams(other, 1), "five-classes")] } }))
      expect(mismatch.message).toMatch(/member 1 has 5 classes, member 0 3/)
    })
  )
})
