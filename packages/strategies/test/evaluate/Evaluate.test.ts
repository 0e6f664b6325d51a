import { assert, describe, expect, it, layer } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import { Backend } from "../../src/backend/Backend.ts"
import type { Dataset } from "../../src/data/Dataset.ts"
import * as Evaluate from "../../src/evaluate/Evaluate.ts"
import * as Interpolation from "../../src/evaluate/Interpolation.ts"
import * as Metrics from "../../src/evaluate/Metrics.ts"
import * as Plot from "../../src/evaluate/Plot.ts"
import * as Network from "../../src/models/Network.ts"
import * as Params from "../../src/models/Params.ts"
import { cnnArch, labels, randomParams, uniform } from "../models/fixtures.ts"
import { forward64, toParams64 } from "../models/reference.ts"

const dataset = (n: number, seed: number): Dataset => ({ name: "random", shape: [2, 6, 6], count: n, x: uniform(seed, n * 72), y: labels(seed + 1, n, 3), classes: 3 })

layer(Backend.layer())("evaluation on the backend", (it) => {
  it.effect("equals the metrics of float64 reference logits, whatever the batch size", () =>
    Effect.gen(function* () {
      const network = yield* Network.resolve(cnnArch)
      const params = randomParams(network, 5)
      const data = dataset(37, 2)
      const ref = Metrics.fromLogits(forward64(network, toParams64(params), data.x, data.count).output.data, data.y, 3)
      for (const batchSize of [37, 8]) {
        const got = yield* Evaluate.evaluate(network, params, data, { batchSize })
        assert.strictEqual(got.count, 37)
        assert.strictEqual(got.accuracy, ref.accuracy)
        expect(got.loss).toBeCloseTo(ref.loss, 5)
        expect(got.ece).toBeCloseTo(ref.ece, 4)
        assert.deepStrictEqual(got.perClass.map((c) => c.count), ref.perClass.map((c) => c.count))
      }
    })
  )

  it.effect("rejects data that does not fit the network", () =>
    Effect.gen(function* () {
      const network = yield* Network.resolve(cnnArch)
      const params = randomParams(network, 5)
      const wrongShape = yield* Effect.flip(Evaluate.evaluate(network, params, { ...dataset(3, 1), shape: [71], x: uniform(1, 3 * 71) }))
      assert.strictEqual(wrongShape._tag, "InputError")
      expect(wrongShape.message).toContain("[71] (71 values)")
      const truncated = yield* Effect.flip(Evaluate.evaluate(network, params, { ...dataset(3, 1), x: uniform(1, 3 * 72 - 3) }))
      expect(truncated.message).toContain("213 values")
      const tooManyClasses = yield* Effect.flip(Evaluate.evaluate(network, params, { ...dataset(3, 1), classes: 10 }))
      expect(tooManyClasses.message).toContain("10 classes")
      const empty = yield* Effect.flip(Evaluate.evaluate(network, params, { ...dataset(0, 1), count: 0 }))
      expect(empty.message).toContain("empty")
    })
  )

  it.effect("interpolation: endpoints and midpoint equal direct evaluation; a path to itself has no barrier", () =>
    Effect.gen(function* () {
      const network = yield* Network.resolve(cnnArch)
      const a = randomParams(network, 1)
      const b = randomParams(network, 2)
      const data = dataset(30, 7)
      const before = tf.memory().numTensors
      const path = yield* Interpolation.interpolate(network, a, b, data, { points: 5 })
      assert.strictEqual(tf.memory().numTensors, before)
      assert.deepStrictEqual(path.points.map((p) => p.lambda), [0, 0.25, 0.5, 0.75, 1])
      const atA = yield* Evaluate.evaluate(network, a, data)
      const atB = yield* Evaluate.evaluate(network, b, data)
      const mid = yield* Evaluate.evaluate(network, Params.lerp(a, b, 0.5), data)
      assert.strictEqual(path.points[0]!.loss, atA.loss)
      assert.strictEqual(path.points[4]!.loss, atB.loss)
      assert.strictEqual(path.points[2]!.accuracy, mid.accuracy)
      assert.deepStrictEqual(path.barrier, Interpolation.barrier(path.points))
      const flat = yield* Interpolation.interpolate(network, a, a, data, { points: 3 })
      expect(flat.barrier.loss).toBeCloseTo(0, 6)
      expect(flat.barrier.accuracy).toBeCloseTo(0, 12)
      const mismatch = yield* Effect.flip(Interpolation.interpolate(network, a, new Map([...b].slice(1)), data))
      assert.strictEqual(mismatch._tag, "ParamError")
      expect(mismatch.message).toMatch(/^B: /)
    })
  )
})

describe("barriers and plots (pure)", () => {
  it("the loss barrier is the largest rise above the endpoints' line; the accuracy barrier the largest dip", () => {
    const points = [
      { lambda: 0, loss: 1, accuracy: 0.9 },
      { lambda: 0.25, loss: 2.5, accuracy: 0.7 },
      { lambda: 0.5, loss: 3, accuracy: 0.4 },
      { lambda: 0.75, loss: 2, accuracy: 0.5 },
      { lambda: 1, loss: 2, accuracy: 0.8 }
    ]
    // line: loss 1 + λ, accuracy 0.9 − 0.1λ → gaps: loss 1.25, 1.5, 0.25; accuracy 0.175, 0.45, 0.325
    const barrier = Interpolation.barrier(points)
    assert.deepStrictEqual([barrier.lossAt, barrier.accuracyAt], [0.5, 0.5])
    expect(barrier.loss).toBeCloseTo(1.5, 12)
    expect(barrier.accuracy).toBeCloseTo(0.45, 12)
    assert.deepStrictEqual(Interpolation.lambdas(3), [0, 0.5, 1])
    assert.strictEqual(Interpolation.lambdas(11)[10], 1)
  })

  it("an SVG plot places every point and escapes labels", () => {
    const points = Interpolation.lambdas(5).map((lambda) => ({ lambda, loss: 1 + 4 * lambda * (1 - lambda), accuracy: 0.9 - 0.4 * lambda * (1 - lambda) }))
    const svg = Plot.interpolationSvg([{ label: "naive <A&B>", points }, { label: "matched", points: points.map((p) => ({ ...p, loss: 1 })) }], { title: "MLP \"rebasin\"", width: 720, height: 320 })
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true)
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true)
    expect(svg).toContain("naive &lt;A&amp;B&gt;")
    expect(svg).toContain("MLP &quot;rebasin&quot;")
    expect(svg).not.toContain("<A&B>")
    const polylines = [...svg.matchAll(/<polyline [^>]*points="([^"]*)"/g)].map((m) => m[1]!.split(" ").map((xy) => xy.split(",").map(Number)))
    assert.strictEqual(polylines.length, 4)
    // loss panel of the first curve: x from the left edge (56) to 56 + panel width; the peak (λ = 0.5) is the highest point
    const loss = polylines[0]!
    assert.strictEqual(loss.length, 5)
    assert.strictEqual(loss[0]![0], 56)
    assert.strictEqual(loss[4]![0], 56 + (720 - 2 * 72) / 2)
    expect(Math.min(...loss.map((p) => p[1]!))).toBe(loss[2]![1])
    assert.strictEqual(svg.match(/<circle /g)!.length, 20)
    assert.strictEqual(Plot.interpolationSvg([{ label: "x", points }]), Plot.interpolationSvg([{ label: "x", points }]))
    assert.deepStrictEqual(Plot.ticks(0, 1), [0, 0.25, 0.5, 0.75, 1])
    assert.deepStrictEqual(Plot.ticks(0.1, 0.5), [0.1, 0.2, 0.3, 0.4, 0.5])
  })
})
