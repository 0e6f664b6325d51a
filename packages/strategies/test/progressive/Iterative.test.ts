import { assert, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Backend } from "../../src/backend/Backend.ts"
import * as DataSource from "../../src/data/Source.ts"
import * as Evaluate from "../../src/evaluate/Evaluate.ts"
import * as Network from "../../src/models/Network.ts"
import * as Runnable from "../../src/models/Runnable.ts"
import { IterativeKind, PATH_KEY } from "../../src/progressive/Iterative.ts"
import * as Soup from "../../src/soup/Soup.ts"
import { randomParams } from "../models/fixtures.ts"
import { decodeParams } from "../decodeParams.ts"

const context = { resolvePath: (p: string) => p, runDir: "/nonexistent", cacheDir: "/nonexistent", dryRun: false, id: "it", kind: "progressive/iterative" }

layer(Backend.layer())("iterative fusion", (it) => {
  it.effect("keeps a step only when validation strictly improves; the accumulator is the mean of the kept models", () =>
    Effect.gen(function* () {
      const network = yield* Network.resolve({ type: "mlp", layers: [4, 8, 3] })
      const sets = [1, 2, 3].map((s) => randomParams(network, s))
      const models = [sets[0]!, sets[0]!, sets[1]!, sets[2]!].map((p, i) => Runnable.toModel(network, p, `m${i}`))
      const out = yield* IterativeKind.run({ ...context, params: decodeParams(IterativeKind, { data: "iris", split: "val", metric: "loss" }), inputs: { models, base: undefined } })
      const record = JSON.parse(out.metadata[PATH_KEY]!)
      const path = record.path as Array<{ index: number; score: number; kept: boolean; accumulatorScore: number }>
      assert.strictEqual(path.length, 4)
      assert.isTrue(path[0]!.kept)
      // Merging a model with itself changes nothing: not a strict improvement.
      assert.isFalse(path[1]!.kept)
      for (let i = 1; i < path.length; i++) {
        assert.strictEqual(path[i]!.kept, path[i]!.score > path[i - 1]!.accumulatorScore)
        expect(path[i]!.accumulatorScore).toBeGreaterThanOrEqual(path[i - 1]!.accumulatorScore)
      }
      const keptSets = (record.kept as Array<number>).map((i) => [sets[0]!, sets[0]!, sets[1]!, sets[2]!][i]!)
      const got = (yield* Runnable.load(out, undefined, (p) => p)).params
      const want = Soup.average(network, keptSets)
      for (const [name, t] of want) for (let i = 0; i < t.data.length; i++) expect(Math.abs(got.get(name)!.data[i]! - t.data[i]!)).toBeLessThan(1e-6)
      const data = yield* DataSource.load("iris", "val", (p) => p)
      expect(-(yield* Evaluate.evaluate(network, got, data)).loss).toBeCloseTo(path.at(-1)!.accumulatorScore, 5)
    })
  )

  it.effect("a step may use a merge method that reads no statistics (the step passes none)", () =>
    Effect.gen(function* () {
      const network = yield* Network.resolve({ type: "mlp", layers: [4, 8, 3] })
      const models = [1, 2].map((s) => Runnable.toModel(network, randomParams(network, s), `m${s}`))
      const out = yield* IterativeKind.run({ ...context, params: decodeParams(IterativeKind, { data: "iris", method: "merge/multislerp" }), inputs: { models, base: undefined } })
      assert.strictEqual(JSON.parse(out.metadata[PATH_KEY]!).path.length, 2)
    })
  )

  it.effect("invalid method parameters are a typed error naming the method", () =>
    Effect.gen(function* () {
      const network = yield* Network.resolve({ type: "mlp", layers: [4, 8, 3] })
      const models = [1, 2].map((s) => Runnable.toModel(network, randomParams(network, s), `m${s}`))
      const error = yield* Effect.flip(IterativeKind.run({ ...context, params: decodeParams(IterativeKind, { data: "iris", with: { weights: "heavy" } }), inputs: { models, base: undefined } }))
      assert.strictEqual(error._tag, "ProgressiveError")
      expect(error.message).toMatch(/not valid for merge\/linear/)
    })
  )
})
