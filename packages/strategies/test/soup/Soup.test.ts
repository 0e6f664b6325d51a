import { assert, describe, expect, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Backend } from "../../src/backend/Backend.ts"
import * as DataSource from "../../src/data/Source.ts"
import * as Network from "../../src/models/Network.ts"
import * as Runnable from "../../src/models/Runnable.ts"
import * as Soup from "../../src/soup/Soup.ts"
import { GreedySoupKind, SOUP_KEY, UniformSoupKind } from "../../src/soup/SoupStage.ts"
import { mlpArch, mlpNormArch, randomParams } from "../models/fixtures.ts"
import { decodeParams } from "../decodeParams.ts"

/** A synthetic soup score: a lookup by the set of ingredients (order-free). */
const table = (scores: Readonly<Record<string, number>>) => (ingredients: ReadonlyArray<number>) =>
  Effect.sync(() => scores[[...ingredients].sort((a, b) => a - b).join(",")] ?? -1)

describe("greedy soup selection", () => {
  it.effect("starts from the best ingredient and keeps one only when the soup strictly improves", () =>
    Effect.gen(function* () {
      // Ingredient scores: 2 is best, then 0, 3, 1.
      const scores = [0.8, 0.6, 0.9, 0.7]
      const soup = table({ "0,2": 0.95, "0,2,3": 0.95, "0,1,2": 0.97 })
      const seen: Array<Soup.Decision> = []
      const result = yield* Soup.greedy(scores, soup, (d) => Effect.sync(() => seen.push(d)))
      assert.deepStrictEqual(result.chosen, [2, 0, 1])
      assert.strictEqual(result.score, 0.97)
      // 3 ties the soup's score (0.95): not strictly better, so it is left out.
      assert.deepStrictEqual(seen.map((d) => [d.index, d.kept]), [[2, true], [0, true], [3, false], [1, true]])
      assert.deepStrictEqual(seen.map((d) => d.soupScore), [0.9, 0.95, 0.95, 0.97])
    })
  )

  it.effect("keeps only the best ingredient when no soup beats it; ties in score keep the input order", () =>
    Effect.gen(function* () {
      const result = yield* Soup.greedy([0.5, 0.9, 0.9], table({}))
      assert.deepStrictEqual(result.chosen, [1])
      assert.deepStrictEqual(result.decisions.map((d) => d.index), [1, 2, 0])
      assert.deepStrictEqual(Soup.ranking([0.1, 0.3, 0.3, 0.2]), [1, 2, 3, 0])
    })
  )

  it.effect("the uniform average is the float64 mean rounded once; integer buffers come from the first ingredient", () =>
    Effect.gen(function* () {
      const network = yield* Network.resolve(mlpNormArch)
      const sets = [1, 2, 3].map((s) => randomParams(network, s))
      const tracked = network.params.find((p) => p.role === "num_batches_tracked")!.name
      sets[0]!.get(tracked)!.data[0] = 7
      sets[1]!.get(tracked)!.data[0] = 100
      const avg = Soup.average(network, sets)
      for (const [name, t] of avg) {
        if (name === tracked) {
          assert.strictEqual(t.data[0], 7)
          continue
        }
        for (let i = 0; i < t.data.length; i++) assert.strictEqual(t.data[i], Math.fround((sets[0]!.get(name)!.data[i]! + sets[1]!.get(name)!.data[i]! + sets[2]!.get(name)!.data[i]!) / 3))
      }
    })
  )
})

layer(Backend.layer())("soup stages", (it) => {
  const context = { resolvePath: (p: string) => p, runDir: "/nonexistent", cacheDir: "/nonexistent", dryRun: false }
  it.effect("val and fit partition the train split by index (train sample i is val when i % 10 == 9)", () =>
    Effect.gen(function* () {
      const train = yield* DataSource.load("mnist", "train", (p) => p)
      const val = yield* DataSource.load("mnist", "val", (p) => p)
      const fit = yield* DataSource.load("mnist", "fit", (p) => p)
      assert.strictEqual(val.name, "mnist/val")
      assert.strictEqual(val.count, Math.floor(train.count / 10))
      assert.strictEqual(fit.count + val.count, train.count)
      const size = 784
      const row = (d: typeof train, i: number) => d.x.subarray(i * size, (i + 1) * size)
      for (const i of [0, 1, 57, val.count - 1]) {
        assert.deepStrictEqual(row(val, i), row(train, 10 * i + 9))
        assert.strictEqual(val.y[i], train.y[10 * i + 9])
      }
      assert.deepStrictEqual(row(fit, 9), row(train, 10)) // fit skips train sample 9
    })
  )

  it.effect("greedy soup on Iris: chosen ingredients in the metadata, never worse on validation than the best ingredient; uniform is their mean", () =>
    Effect.gen(function* () {
      const network = yield* Network.resolve({ type: "mlp", layers: [4, 8, 3] })
      const models = [1, 2, 3, 4].map((s) => Runnable.toModel(network, randomParams(network, s), `ing${s}`))
      const greedy = yield* GreedySoupKind.run({ ...context, id: "g", kind: "soup/greedy", params: decodeParams(GreedySoupKind, { data: "iris", split: "val" }), inputs: { models } })
      const recipe = JSON.parse(greedy.metadata[SOUP_KEY]!)
      assert.strictEqual(recipe.method, "greedy")
      assert.strictEqual(recipe.data, "iris/val")
      const best = Math.max(...recipe.ingredients.map((i: { score: number }) => i.score))
      expect(recipe.score).toBeGreaterThanOrEqual(best)
      assert.strictEqual(recipe.chosen[0], recipe.ingredients.findIndex((i: { score: number }) => i.score === best))
      assert.strictEqual(recipe.decisions.length, 4)
      const uniform = yield* UniformSoupKind.run({ ...context, id: "u", kind: "soup/uniform", params: {}, inputs: { models } })
      assert.deepStrictEqual(JSON.parse(uniform.metadata[SOUP_KEY]!).chosen, [0, 1, 2, 3])
      const loaded = yield* Runnable.load(uniform, undefined, (p) => p)
      assert.deepStrictEqual(loaded.params, Soup.average(network, yield* Effect.forEach(models, (m) => Effect.map(Runnable.load(m, undefined, (p) => p), (l) => l.params))))
    })
  )

  it.effect("ingredients of different architectures are a typed error naming them", () =>
    Effect.gen(function* () {
      const a = yield* Network.resolve(mlpArch)
      const b = yield* Network.resolve({ type: "mlp", layers: [7, 4, 3] })
      const error = yield* Effect.flip(UniformSoupKind.run({ ...context, id: "u", kind: "soup/uniform", params: {}, inputs: { models: [Runnable.toModel(a, randomParams(a, 1), "a"), Runnable.toModel(b, randomParams(b, 1), "b")] } }))
      assert.strictEqual(error._tag, "SoupError")
      expect(error.message).toMatch(/ingredient 1 \(b\) has another architecture/)
    })
  )
})
