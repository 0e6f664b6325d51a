import { assert, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Backend } from "../../src/backend/Backend.ts"
import * as DataSource from "../../src/data/Source.ts"
import * as Classifier from "../../src/ensemble/Classifier.ts"
import * as Network from "../../src/models/Network.ts"
import * as Runnable from "../../src/models/Runnable.ts"
import { CascadeKind } from "../../src/progressive/Cascade.ts"
import * as CascadeBundle from "../../src/progressive/CascadeBundle.ts"
import { randomParams, worstError } from "../models/fixtures.ts"
import { forward64, toParams64 } from "../models/reference.ts"
import { decodeParams } from "../decodeParams.ts"

const context = (id: string) => ({
  resolvePath: (p: string) => p,
  runDir: "/nonexistent",
  cacheDir: fs.mkdtempSync(path.join(os.tmpdir(), "cascade-")),
  dryRun: false,
  id,
  kind: "progressive/cascade"
})

const trainParams = { data: "iris", split: "train", epochs: 3, batch_size: 16, seed: 7, optimizer: { type: "adam", lr: 0.01 } } as const

/** The first model: a random 4-8-6-3 MLP on iris. */
const firstModel = Effect.gen(function* () {
  const network = yield* Network.resolve({ type: "mlp", layers: [4, 8, 6, 3] })
  const params = randomParams(network, 11)
  return { network, params, model: Runnable.toModel(network, params, "first") }
})

/** The bundle's stages, decoded and loaded. */
const stagesOf = (bundle: Parameters<typeof CascadeBundle.decode>[0]) =>
  Effect.gen(function* () {
    const { spec, stages } = yield* CascadeBundle.decode(bundle)
    const loaded = yield* Effect.forEach(stages, (s) => Runnable.load(s, undefined, (p) => p))
    return { spec, first: loaded[0]!, second: loaded[1]! }
  })

layer(Backend.layer())("progressive/cascade", (it) => {
  it.effect("a hidden layer through an adapter: logits equal the two networks run by hand in float64; the first model is frozen", () =>
    Effect.gen(function* () {
      const first = yield* firstModel
      const bundle = yield* CascadeKind.run({ ...context("c"), params: decodeParams(CascadeKind, { ...trainParams, layer: "act.1", arch: { type: "mlp", layers: [5, 7, 3] } }), inputs: { first: first.model, init: undefined } })
      const { spec, first: stage0, second: stage1 } = yield* stagesOf(bundle)
      assert.deepStrictEqual(spec, { layer: "act.1", adapter: true })
      // Stage 1 is the adapter 6 → 5 followed by the 5-7-3 MLP.
      assert.deepStrictEqual(bundle.tensors.get("stages.1.layers.0.weight")?.shape, [5, 6])
      assert.deepStrictEqual(stage1.network.inputShape, [6])
      assert.deepStrictEqual(stage1.network.params.map((p) => p.shape), [[5, 6], [5], [7, 5], [7], [3, 7], [3]])
      for (const [name, t] of first.params) assert.deepStrictEqual(Array.from(stage0.params.get(name)!.data), Array.from(t.data), name)
      const history = JSON.parse(bundle.metadata["crucible.cascade.history"]!) as Array<{ loss: number }>
      assert.strictEqual(history.length, 3)
      expect(history[2]!.loss).toBeLessThan(history[0]!.loss)

      const data = yield* DataSource.load("iris", "test", (p) => p)
      const got = yield* Classifier.logits(yield* Classifier.fromModel(bundle, undefined, (p) => p), data)
      const hidden = forward64(first.network, toParams64(first.params), data.x, data.count).activations.get("act.1")!
      const want = forward64(stage1.network, toParams64(stage1.params), hidden.data, data.count).output
      assert.strictEqual(got.length, data.count * 3)
      expect(worstError(got, want.data, 1e-5, 1e-5)).toBeLessThanOrEqual(1)
    })
  )

  it.effect("the first model's output with a second model of matching input: no adapter, and `init` starts the second model", () =>
    Effect.gen(function* () {
      const first = yield* firstModel
      const net2 = yield* Network.resolve({ type: "mlp", layers: [3, 4, 3] })
      const init = Runnable.toModel(net2, randomParams(net2, 5), "init")
      // lr 1e-30 is below every weight's float32 spacing: one epoch leaves the init weights bit for bit.
      const bundle = yield* CascadeKind.run({ ...context("d"), params: decodeParams(CascadeKind, { ...trainParams, epochs: 1, optimizer: { type: "sgd", lr: 1e-30 } }), inputs: { first: first.model, init } })
      const { spec, second } = yield* stagesOf(bundle)
      assert.deepStrictEqual(spec, { layer: "output", adapter: false })
      const initParams = (yield* Runnable.load(init, undefined, (p) => p)).params
      for (const [name, t] of initParams) assert.deepStrictEqual(Array.from(second.params.get(name)!.data), Array.from(t.data), name)
      const data = yield* DataSource.load("iris", "test", (p) => p)
      const got = yield* Classifier.logits(yield* Classifier.fromModel(bundle, undefined, (p) => p), data)
      const out1 = forward64(first.network, toParams64(first.params), data.x, data.count).output
      const want = forward64(net2, toParams64(initParams), out1.data, data.count).output
      expect(worstError(got, want.data, 1e-5, 1e-5)).toBeLessThanOrEqual(1)
    })
  )

  it.effect("`init` behind an adapter: the second model's weights move to the shifted names unchanged", () =>
    Effect.gen(function* () {
      const first = yield* firstModel
      const net2 = yield* Network.resolve({ type: "mlp", layers: [5, 4, 3], norm: "batchnorm" })
      const initParams = randomParams(net2, 9)
      const bundle = yield* CascadeKind.run({ ...context("e"), params: decodeParams(CascadeKind, { ...trainParams, epochs: 1, layer: "act.0", optimizer: { type: "sgd", lr: 1e-30 } }), inputs: { first: first.model, init: Runnable.toModel(net2, initParams, "init") } })
      const { spec, second } = yield* stagesOf(bundle)
      assert.deepStrictEqual(spec, { layer: "act.0", adapter: true })
      // (Running statistics move in training; trainable weights do not at this rate.) layers.0 is the adapter (8 → 5); the MLP's layers.0, norms.0, layers.1 become layers.1, layers.2, layers.4.
      const moved: Record<string, string> = { "layers.0.weight": "layers.1.weight", "layers.0.bias": "layers.1.bias", "norms.0.weight": "layers.2.weight", "layers.1.weight": "layers.4.weight" }
      for (const [from, to] of Object.entries(moved)) assert.deepStrictEqual(Array.from(second.params.get(to)!.data), Array.from(initParams.get(from)!.data), `${from} → ${to}`)
      assert.deepStrictEqual(second.params.get("layers.0.weight")!.shape, [5, 8])
    })
  )

  it.effect("bad input is a typed error naming the layer, the shapes or the bundle", () =>
    Effect.gen(function* () {
      const first = yield* firstModel
      const run = (params: Record<string, unknown>, firstIn = first.model) =>
        Effect.flip(CascadeKind.run({ ...context("bad"), params: decodeParams(CascadeKind, { ...trainParams, ...params } as never), inputs: { first: firstIn, init: undefined } }))
      const unknown = yield* run({ layer: "act.7", arch: { type: "mlp", layers: [3, 3] } })
      assert.strictEqual(unknown._tag, "CascadeError")
      expect(unknown.message).toMatch(/layer "act\.7".*known: output, input/)
      const image = yield* run({ layer: "act.0", arch: { type: "sequential", input: [1, 2, 2], layers: [{ type: "flatten" }, { type: "dense", out: 3 }] } })
      expect(image.message).toMatch(/ShapeMismatch.*8 values per sample.*\[1, 2, 2\]/)
      const good = yield* CascadeKind.run({ ...context("ok"), params: decodeParams(CascadeKind, { ...trainParams, epochs: 1, arch: { type: "mlp", layers: [3, 3] } }), inputs: { first: first.model, init: undefined } })
      const nested = yield* run({ arch: { type: "mlp", layers: [3, 3] } }, good)
      expect(nested.message).toMatch(/is a bundle/)
      const withArch = yield* Effect.flip(Classifier.fromModel(good, { type: "mlp", layers: [4, 3] }, (p) => p))
      expect(withArch.message).toMatch(/arch: cannot be given for a cascade/)
      // A bundle whose stage 1 no longer fits stage 0's layer is refused before anything runs.
      const broken = { ...good, metadata: { ...good.metadata, [CascadeBundle.CASCADE_KEY]: JSON.stringify({ layer: "act.0", adapter: false }) } }
      const mismatch = yield* Effect.flip(Classifier.fromModel(broken, undefined, (p) => p))
      expect(mismatch.message).toMatch(/stage 1 takes \[3\]; stage 0's "act.0" has 8 values/)
      const strays = { ...good, tensors: new Map([...good.tensors, ["extra", { ...good.tensors.get("stages.0.layers.0.weight")!, name: "extra" }]]) }
      const stray = yield* Effect.flip(CascadeBundle.decode(strays))
      expect(stray.message).toMatch(/tensor "extra" belongs to no stage/)
    })
  )
})
