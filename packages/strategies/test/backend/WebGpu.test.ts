// The webgpu backend on a real Vulkan driver (lavapipe here, in CI too), against the cpu backend
// and float64. One process holds one TF.js backend at a time: the tests switch between cpu and
// webgpu in order (both stay registered), reading every result to the host before switching.
import { assert, describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs-core"
import { Effect, Layer, Tracer } from "effect"
import { beforeEach } from "vitest"
import { Backend, type BackendInfo } from "../../src/backend/Backend.ts"
import * as Mnist from "../../src/data/Mnist.ts"
import * as Evaluate from "../../src/evaluate/Evaluate.ts"
import * as Init from "../../src/models/Init.ts"
import * as Network from "../../src/models/Network.ts"
import type { ParamSet } from "../../src/models/Params.ts"
import type { Optimizer } from "../../src/train/Optimizer.ts"
import * as Train from "../../src/train/Train.ts"
import { uniform } from "../models/fixtures.ts"
import { gpuMissing, skipWithoutGpu } from "../support/Gpu.ts"
import { recordingTracer } from "../support/Spans.ts"

const missing = gpuMissing()
beforeEach((context) => skipWithoutGpu(context, missing))

const on = (name: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provide(effect, Backend.layer(name))

const maxAbsDiff = (a: Float32Array, b: Float32Array): number => {
  assert.strictEqual(a.length, b.length)
  let max = 0
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!))
  return max
}

describe("webgpu backend (Dawn on lavapipe)", () => {
  it.effect("starts on the adapter Gpu.acquire finds, carries its device, and annotates the span", () =>
    Effect.gen(function* () {
      const { tracer, spans } = recordingTracer()
      const backend: BackendInfo = yield* Effect.provide(Backend, Backend.layer("webgpu")).pipe(Effect.provide(Layer.succeed(Tracer.Tracer, tracer)))
      assert.strictEqual(backend.name, "webgpu")
      assert.strictEqual(tf.getBackend(), "webgpu")
      assert.isDefined(backend.gpu)
      // the device TF.js computes on is the one the service hands out (for the GPU merges)
      assert.strictEqual((tf.backend() as unknown as { device: GPUDevice }).device, backend.gpu!.device)
      const span = spans.find((s) => s.name === "Backend.initialise")!
      assert.strictEqual(span.attributes.get("crucible.backend"), "webgpu")
      assert.strictEqual(span.attributes.get("crucible.gpu.adapter"), backend.gpu!.info.description)
      assert.strictEqual(span.attributes.get("crucible.gpu.vendor"), backend.gpu!.info.vendor)
      assert.strictEqual(span.attributes.get("crucible.gpu.fallback"), backend.gpu!.info.isFallbackAdapter)
    })
  )

  it.effect("auto picks webgpu when there is an adapter", () =>
    Effect.gen(function* () {
      yield* Effect.provide(Backend, Backend.layer("cpu"))
      const backend = yield* Effect.provide(Backend, Backend.layer("auto"))
      assert.strictEqual(backend.name, "webgpu")
      assert.isUndefined(backend.fallbackFrom)
      assert.strictEqual(tf.getBackend(), "webgpu")
    })
  )

  it.effect("matMul of random 256×256 matrices agrees with float64", () =>
    Effect.gen(function* () {
      const n = 256
      const a = uniform(1, n * n)
      const b = uniform(2, n * n)
      const product = yield* Effect.promise(async () => {
        const c = tf.tidy(() => tf.matMul(tf.tensor2d(a, [n, n]), tf.tensor2d(b, [n, n])))
        const values = (await c.data()) as Float32Array
        c.dispose()
        return values
      }).pipe(on("webgpu"))
      let worst = 0
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          let exact = 0
          let magnitude = 0
          for (let k = 0; k < n; k++) {
            exact += a[i * n + k]! * b[k * n + j]!
            magnitude += Math.abs(a[i * n + k]! * b[k * n + j]!)
          }
          // Float32 summation of n products in any order is within n·u·Σ|aₖbₖ| (u = 2⁻²⁴) of the
          // exact sum (Higham, Accuracy and Stability, §3.1); float64 is exact enough to stand for it.
          const bound = n * 2 ** -24 * magnitude
          worst = Math.max(worst, Math.abs(product[i * n + j]! - exact) / bound)
        }
      }
      expect(worst).toBeLessThanOrEqual(1)
    })
  )

  // A few steps of the project's trainer on both backends, from the same start on the same batches.
  const network = Network.resolve({ type: "mlp", layers: [784, 32, 10] })
  const trainOn = (name: string, optimizer: Optimizer) =>
    Effect.gen(function* () {
      const net = yield* network
      const { train } = yield* Mnist.load({ limitPerDigit: 7 })
      // 70 samples in batches of 35: 2 batches an epoch, 2 epochs = 4 steps
      const result = yield* Train.train(net, Init.initNetwork(net, 3), train, { epochs: 2, batchSize: 35, seed: 5, optimizer })
      return { history: result.history, params: result.state.params, slots: result.state.optimizer.slots }
    }).pipe(on(name))

  const worstParam = (a: ParamSet, b: ParamSet): number => {
    let worst = 0
    for (const [name, t] of a) worst = Math.max(worst, maxAbsDiff(t.data, b.get(name)!.data))
    return worst
  }

  for (const [label, optimizer] of [
    ["SGD with momentum", { type: "sgd", lr: 0.1, momentum: 0.9 }],
    ["Adam", { type: "adam", lr: 1e-3 }]
  ] as const) {
    it.effect(`training an MLP 784-32-10 (${label}) gives the cpu backend's losses and weights`, () =>
      Effect.gen(function* () {
        const cpu = yield* trainOn("cpu", optimizer)
        const gpu = yield* trainOn("webgpu", optimizer)
        assert.strictEqual(tf.getBackend(), "webgpu")
        const losses = gpu.history.map((h, i) => Math.abs(h.loss - cpu.history[i]!.loss) / cpu.history[i]!.loss)
        const weights = worstParam(gpu.params, cpu.params)
        const slots = worstParam(gpu.slots, cpu.slots)
        console.log(`webgpu vs cpu (${label}): loss rel ${Math.max(...losses).toExponential(2)}, weights abs ${weights.toExponential(2)}, slots abs ${slots.toExponential(2)}`)
        // Both compute in float32 and differ only in summation order (784-long dot products, batch
        // reductions): at most ~784·2⁻²⁴ ≈ 5e-5 relative per dot product in the worst case, ~1e-7 in
        // practice (measured on lavapipe: ≤ 1e-7 on the loss, ≤ 3e-8 on weights of magnitude 0.05-0.3).
        // 1e-5 leaves two orders of margin over that yet catches a wrong kernel (which moves them by ≥ 1e-3).
        for (const d of losses) expect(d).toBeLessThan(1e-5)
        expect(weights).toBeLessThan(1e-5)
        expect(slots).toBeLessThan(1e-5)
        for (let i = 0; i < gpu.history.length; i++) assert.strictEqual(gpu.history[i]!.accuracy, cpu.history[i]!.accuracy)
        // and it learned: the loss of the last epoch is below the first
        expect(gpu.history[1]!.loss).toBeLessThan(gpu.history[0]!.loss)
      })
    )
  }

  it.effect("evaluation gives the cpu backend's accuracy", () =>
    Effect.gen(function* () {
      const net = yield* network
      const { test } = yield* Mnist.load({ limitPerDigit: 10 })
      const params = Init.initNetwork(net, 11)
      const cpu = yield* Evaluate.evaluate(net, params, test).pipe(on("cpu"))
      const gpu = yield* Evaluate.evaluate(net, params, test).pipe(on("webgpu"))
      assert.strictEqual(gpu.accuracy, cpu.accuracy)
      assert.strictEqual(gpu.count, cpu.count)
      // the loss is a mean over 100 samples of float32 log-softmax: 1e-5 relative is ~100× its rounding
      expect(Math.abs(gpu.loss - cpu.loss) / cpu.loss).toBeLessThan(1e-5)
    })
  )

  it.effect("a synchronous read of an unread GPU tensor fails saying how to read it", () =>
    Effect.gen(function* () {
      // large enough to run on the GPU (TF.js computes tiny ops on the CPU)
      const t = tf.tidy(() => tf.matMul(tf.ones([64, 64]), tf.ones([64, 64])))
      expect(() => t.dataSync()).toThrow(/await tensor.data\(\)/)
      expect(new Set(yield* Effect.promise(() => t.data()))).toEqual(new Set([64]))
      // once read, the values are on the host: dataSync returns them
      expect(t.dataSync().length).toBe(64 * 64)
      t.dispose()
    }).pipe(on("webgpu"))
  )
})
