// Every model stage kind on the webgpu backend (Dawn on lavapipe) against the same stage on cpu:
// distill, align (activation and weight matching), ensemble, the soups and evaluate. One process
// holds one TF.js backend at a time: each test runs the cpu side, then the webgpu side (both stay
// registered), and compares host values only. Sizes are tiny (Iris, MLPs 4-16-3): lavapipe
// computes at ~1 GFLOP/s.
//
// Tolerances: both backends compute in float32 and differ only in summation order (dot products of
// ≤ 16 terms, batch means over ≤ 150 samples), so values agree to a few float32 ulps (~1e-7
// relative; measured ≤ 3.5e-7 on lavapipe). 1e-5 (relative, or absolute on values of magnitude ≤ ~1) leaves
// over an order of magnitude of margin and still catches a wrong kernel or a misplaced read (which
// move them by ≥ 1e-3). Discrete results (accuracies, chosen ingredients, permutations) must be equal.
import { assert, describe, expect, it } from "@effect/vitest"
import type { Model } from "@crucible/core"
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { beforeEach } from "vitest"
import { ActivationMatchingKind } from "../../src/align/ActivationMatchingStage.ts"
import { WeightMatchingKind } from "../../src/align/WeightMatchingStage.ts"
import { Backend } from "../../src/backend/Backend.ts"
import * as DataSource from "../../src/data/Source.ts"
import { DistillKind } from "../../src/distill/DistillStage.ts"
import * as Classifier from "../../src/ensemble/Classifier.ts"
import { EnsembleKind } from "../../src/ensemble/EnsembleStage.ts"
import { EvaluateKind } from "../../src/evaluate/EvaluateStage.ts"
import * as Forward from "../../src/models/Forward.ts"
import * as Network from "../../src/models/Network.ts"
import type { ParamSet } from "../../src/models/Params.ts"
import * as Runnable from "../../src/models/Runnable.ts"
import { GreedySoupKind, SOUP_KEY, UniformSoupKind } from "../../src/soup/SoupStage.ts"
import * as Train from "../../src/train/Train.ts"
import { decodeParams } from "../decodeParams.ts"
import { randomParams } from "../models/fixtures.ts"
import { gpuMissing, skipWithoutGpu } from "../support/Gpu.ts"

const missing = gpuMissing()
beforeEach((context) => skipWithoutGpu(context, missing))

const on = (name: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provide(effect, Backend.layer(name))

/** Runs `effect` on cpu, then on webgpu (asserting TF.js really switched). */
const both = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const cpu = yield* on("cpu")(effect)
    const gpu = yield* on("webgpu")(Effect.flatMap(Effect.sync(() => assert.strictEqual(tf.getBackend(), "webgpu")), () => effect))
    return { cpu, gpu }
  })

const TOLERANCE = 1e-5

/** max |a − b| / (1 + |b|): relative for large values, absolute for small ones. */
const worst = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  assert.strictEqual(a.length, b.length)
  let max = 0
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!) / (1 + Math.abs(b[i]!)))
  return max
}

const worstParams = (a: ParamSet, b: ParamSet): number => {
  assert.deepStrictEqual([...a.keys()].sort(), [...b.keys()].sort())
  let max = 0
  for (const [name, t] of a) max = Math.max(max, worst(t.data, b.get(name)!.data))
  return max
}

const tmp = (label: string) => fs.mkdtempSync(path.join(os.tmpdir(), `crucible-webgpu-${label}-`))
const context = (cacheDir = "/nonexistent") => ({ resolvePath: (p: string) => p, runDir: "/nonexistent", cacheDir, dryRun: false })
const arch = { type: "mlp", layers: [4, 16, 3] } as const
const paramsOf = (model: Model.Model) => Effect.map(Runnable.load(model, undefined, (p) => p), (l) => l.params)

/** Tiny models that differ (trained a little from different seeds on cpu): 80-100% on Iris, not random. */
const trained = (seeds: ReadonlyArray<number>) =>
  on("cpu")(Effect.gen(function* () {
    const network = yield* Network.resolve(arch)
    const data = yield* DataSource.load("iris", "train", (p) => p)
    return yield* Effect.forEach(seeds, (seed) =>
      Effect.map(
        Train.train(network, randomParams(network, seed), data, { epochs: 20, batchSize: 30, seed, optimizer: { type: "adam", lr: 0.02 } }),
        (r) => Runnable.toModel(network, r.state.params, `m${seed}`)
      ))
  }))

describe("model stages on webgpu agree with cpu (Dawn on lavapipe)", () => {
  it.effect("evaluate: the same accuracy and per-class accuracy, loss and ECE within 1e-5", () =>
    Effect.gen(function* () {
      const [model] = yield* trained([1])
      const { cpu, gpu } = yield* both(EvaluateKind.run({ ...context(), id: "e", kind: "evaluate", params: decodeParams(EvaluateKind, { data: "iris", split: "test", batch_size: 16 }), inputs: { model: model! } }))
      const c = cpu.values as Record<string, unknown>
      const g = gpu.values as Record<string, unknown>
      assert.strictEqual(g.accuracy, c.accuracy)
      assert.deepStrictEqual(g.perClass, c.perClass)
      assert.strictEqual(g.samples, c.samples)
      const d = worst([g.loss as number, g.ece as number], [c.loss as number, c.ece as number])
      console.log(`evaluate webgpu vs cpu: loss/ECE ${d.toExponential(2)}`)
      expect(d).toBeLessThan(TOLERANCE)
    }), 120_000)

  it.effect("ensemble (mean of logits, mean of probabilities): fused logits within 1e-5 and the same accuracy", () =>
    Effect.gen(function* () {
      const models = yield* trained([1, 2, 3])
      for (const mode of ["mean-logits", "mean-probs"] as const) {
        const { cpu, gpu } = yield* both(Effect.gen(function* () {
          const bundle = yield* EnsembleKind.run({ ...context(), id: "ens", kind: "ensemble", params: decodeParams(EnsembleKind, { mode }), inputs: { models } })
          const classifier = yield* Classifier.fromModel(bundle, undefined, (p) => p)
          const data = yield* DataSource.load("iris", "test", (p) => p)
          const logits = yield* Classifier.logits(classifier, data, 16)
          const metrics = yield* EvaluateKind.run({ ...context(), id: "e", kind: "evaluate", params: decodeParams(EvaluateKind, { data: "iris" }), inputs: { model: bundle } })
          return { logits, metrics: metrics.values as Record<string, number> }
        }))
        console.log(`ensemble ${mode} webgpu vs cpu: logits ${worst(gpu.logits, cpu.logits).toExponential(2)}`)
        expect(worst(gpu.logits, cpu.logits), mode).toBeLessThan(TOLERANCE)
        assert.strictEqual(gpu.metrics.accuracy, cpu.metrics.accuracy)
        expect(worst([gpu.metrics.loss!], [cpu.metrics.loss!])).toBeLessThan(TOLERANCE)
      }
    }), 120_000)

  it.effect("soups: uniform gives the same bytes; greedy the same choices and scores", () =>
    Effect.gen(function* () {
      const models = yield* trained([1, 2, 3])
      const { cpu, gpu } = yield* both(Effect.gen(function* () {
        const uniform = yield* UniformSoupKind.run({ ...context(), id: "u", kind: "soup/uniform", params: {}, inputs: { models } })
        const greedy = yield* GreedySoupKind.run({ ...context(), id: "g", kind: "soup/greedy", params: decodeParams(GreedySoupKind, { data: "iris", split: "val" }), inputs: { models } })
        return { uniform: yield* paramsOf(uniform), greedy: yield* paramsOf(greedy), recipe: JSON.parse(greedy.metadata[SOUP_KEY]!) }
      }))
      // the uniform soup is host arithmetic: identical
      assert.deepStrictEqual(gpu.uniform, cpu.uniform)
      assert.deepStrictEqual(gpu.recipe.chosen, cpu.recipe.chosen)
      assert.deepStrictEqual(gpu.recipe.decisions.map((d: { kept: boolean }) => d.kept), cpu.recipe.decisions.map((d: { kept: boolean }) => d.kept))
      const scores = (r: { ingredients: Array<{ score: number }>; score: number }) => [...r.ingredients.map((i) => i.score), r.score]
      expect(worst(scores(gpu.recipe), scores(cpu.recipe))).toBeLessThan(TOLERANCE)
      assert.deepStrictEqual(gpu.greedy, cpu.greedy)
    }), 120_000)

  it.effect("align: activation matching finds the same permutation, and the permuted model computes the same function on the GPU", () =>
    Effect.gen(function* () {
      const [a, b] = yield* trained([1, 2])
      const network = yield* Network.resolve(arch)
      const data = yield* DataSource.load("iris", "train", (p) => p)
      const x = { shape: [data.count, 4], data: data.x }
      const run = Effect.gen(function* () {
        const byActivations = yield* ActivationMatchingKind.run({ ...context(), id: "am", kind: "align/activation-matching", params: decodeParams(ActivationMatchingKind, { data: "iris", samples: 150 }), inputs: { reference: a!, model: b! } })
        const byWeights = yield* WeightMatchingKind.run({ ...context(), id: "wm", kind: "align/weight-matching", params: decodeParams(WeightMatchingKind, {}), inputs: { reference: a!, model: b! } })
        const aligned = yield* paramsOf(byActivations)
        const before = yield* Forward.forward(network, yield* paramsOf(b!), x)
        const after = yield* Forward.forward(network, aligned, x)
        return { aligned, byWeights: yield* paramsOf(byWeights), before: before.output.data, after: after.output.data }
      })
      const { cpu, gpu } = yield* both(run)
      // The permutation is found on the host from the activations' correlations: the same
      // permutation gives the same bytes (permuting copies values).
      assert.deepStrictEqual(gpu.aligned, cpu.aligned)
      assert.deepStrictEqual(gpu.byWeights, cpu.byWeights)
      // it really permuted something
      expect(worstParams(gpu.aligned, yield* paramsOf(b!))).toBeGreaterThan(1e-3)
      // Permuting hidden units only reorders the second layer's 16-term sums: the same function up to float32 rounding.
      console.log(`align: permuted vs original on webgpu ${worst(gpu.after, gpu.before).toExponential(2)}, webgpu vs cpu ${worst(gpu.after, cpu.after).toExponential(2)}`)
      expect(worst(gpu.after, gpu.before)).toBeLessThan(TOLERANCE)
      expect(worst(gpu.after, cpu.after)).toBeLessThan(TOLERANCE)
    }), 120_000)

  it.effect("distill (2 epochs, hint on act.0, validation): the student's weights and history within 1e-5", () =>
    Effect.gen(function* () {
      const [teacher] = yield* trained([4])
      const distill = (label: string) => {
        const cache = path.join(tmp(label), "stage")
        return Effect.ensuring(
          Effect.gen(function* () {
            const out = yield* DistillKind.run({
              ...context(cache), id: "d", kind: "distill",
              params: decodeParams(DistillKind, {
                arch: { type: "mlp", layers: [4, 8, 3] }, data: "iris", validation: "val", epochs: 2, batch_size: 50, seed: 7,
                optimizer: { type: "adam", lr: 0.01 }, hint: { student: "act.0", teacher: "act.0" }
              }),
              inputs: { teacher: teacher!, init: undefined }
            })
            return { params: yield* paramsOf(out), history: JSON.parse(out.metadata["crucible.distill.history"]!) as Array<Record<string, number>> }
          }),
          Effect.sync(() => fs.rmSync(path.dirname(cache), { recursive: true, force: true }))
        )
      }
      // separate cache folders: the webgpu run computes its own teacher outputs
      const cpu = yield* on("cpu")(distill("cpu"))
      const gpu = yield* on("webgpu")(distill("webgpu"))
      assert.strictEqual(gpu.history.length, 2)
      console.log(`distill webgpu vs cpu: weights ${worstParams(gpu.params, cpu.params).toExponential(2)}`)
      expect(worstParams(gpu.params, cpu.params)).toBeLessThan(TOLERANCE)
      for (const [i, h] of gpu.history.entries()) {
        const c = cpu.history[i]!
        expect(worst([h.loss!, h.valLoss!], [c.loss!, c.valLoss!])).toBeLessThan(TOLERANCE)
        assert.strictEqual(h.accuracy, c.accuracy)
        assert.strictEqual(h.valAccuracy, c.valAccuracy)
      }
    }), 120_000)
})
