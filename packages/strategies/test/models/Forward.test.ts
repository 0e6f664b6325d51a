import { assert, describe, expect, layer } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import { Backend } from "../../src/backend/Backend.ts"
import * as Forward from "../../src/models/Forward.ts"
import * as Layout from "../../src/models/Layout.ts"
import * as Network from "../../src/models/Network.ts"
import * as Weights from "../../src/models/Weights.ts"
import * as Loss from "../../src/train/Loss.ts"
import { cnnArch, cnnFlatArch, cnnStrideArch, labels, mlpArch, mlpNormArch, randomParams, uniform, worstError } from "./fixtures.ts"
import { crossEntropy64, forward64, numericGradient, toParams64 } from "./reference.ts"

const N = 4

layer(Backend.layer())("forward pass against a float64 reference", (it) => {
  for (const [label, arch] of [["mlp", mlpArch], ["mlp+batchnorm", mlpNormArch], ["cnn", cnnArch], ["cnn-flatten", cnnFlatArch], ["cnn-strides", cnnStrideArch]] as const) {
    for (const mode of ["eval", "train"] as const) {
      it.effect(`${label} logits and every activation (${mode} mode)`, () =>
        Effect.gen(function* () {
          const network = yield* Network.resolve(arch)
          const params = randomParams(network, 11)
          const size = Network.sampleSize(network.inputShape)
          const x = uniform(5, N * size)
          const result = yield* Forward.forward(network, params, { shape: [N, size], data: x }, { capture: network.activationNames, mode, batchSize: N })
          const ref = forward64(network, toParams64(params), x, N, mode === "train")
          assert.deepStrictEqual(result.output.shape, ref.output.shape)
          expect(worstError(result.output.data, ref.output.data, 1e-5, 1e-4)).toBeLessThan(1)
          for (const name of network.activationNames) {
            const got = result.activations.get(name)
            const want = ref.activations.get(name)
            assert.isDefined(got, name)
            assert.isDefined(want, name)
            assert.deepStrictEqual(got!.shape, want!.shape, name)
            expect(worstError(got!.data, want!.data, 1e-5, 1e-4), name).toBeLessThan(1)
          }
        })
      )
    }
  }

  it.effect("processes batches independently in eval mode (batch size does not change results)", () =>
    Effect.gen(function* () {
      const network = yield* Network.resolve(cnnArch)
      const params = randomParams(network, 3)
      const x = uniform(9, 10 * 72)
      const whole = yield* Forward.forward(network, params, { shape: [10, 2, 6, 6], data: x }, { batchSize: 10 })
      const split = yield* Forward.forward(network, params, { shape: [10, 2, 6, 6], data: x }, { batchSize: 3 })
      expect(worstError(split.output.data, whole.output.data, 1e-6, 1e-5)).toBeLessThan(1)
    })
  )

  it.effect("rejects a wrong input shape, unknown activations and mismatched parameters with typed errors", () =>
    Effect.gen(function* () {
      const network = yield* Network.resolve(mlpArch)
      const params = randomParams(network, 1)
      const badShape = yield* Effect.flip(Forward.forward(network, params, { shape: [2, 8], data: new Float32Array(16) }))
      assert.strictEqual(badShape._tag, "InputError")
      expect(badShape.message).toContain("[N, 7]")
      const badName = yield* Effect.flip(Forward.forward(network, params, { shape: [1, 7], data: new Float32Array(7) }, { capture: ["layers.9"] }))
      expect(badName.message).toContain('"layers.9"')
      const missing = new Map(params)
      missing.delete("layers.1.bias")
      const badParams = yield* Effect.flip(Forward.forward(network, missing, { shape: [1, 7], data: new Float32Array(7) }))
      assert.strictEqual(badParams._tag, "ParamError")
      expect(badParams.message).toContain("layers.1.bias")
    })
  )
})

/** Gradients of the mean cross-entropy with respect to every parameter, through the TF.js graph. */
const tfGradients = (network: Network.Network, params: ReturnType<typeof randomParams>, x: Float32Array, y: Int32Array) => {
  const weights = Weights.upload(network, params, { variables: true })
  const out = new Map<string, Float32Array>()
  try {
    tf.tidy(() => {
      const size = Network.sampleSize(network.inputShape)
      const batch = tf.tensor2d(x, [y.length, size])
      const target = tf.tensor1d(y, "int32")
      const { grads } = tf.variableGrads(() => Loss.softmaxCrossEntropy(Forward.apply(network, weights, batch, { training: true }).output as tf.Tensor2D, target))
      for (const spec of network.params) {
        const v = weights.get(spec.name) as tf.Variable
        const g = grads[v.name]
        if (!spec.trainable || g === undefined) continue
        out.set(spec.name, Layout.paramToTorch({ shape: g.shape, data: g.dataSync() as Float32Array }, spec.layout).data)
      }
    })
  } finally {
    Weights.dispose(weights)
  }
  return out
}

layer(Backend.layer())("custom gradients against float64 finite differences", (it) => {
  for (const [label, arch] of [["mlp", mlpArch], ["mlp+batchnorm", mlpNormArch], ["cnn", cnnArch], ["cnn-flatten", cnnFlatArch], ["cnn-strides", cnnStrideArch]] as const) {
    it.effect(`${label}: d(cross-entropy)/d(every parameter)`, () =>
      Effect.gen(function* () {
        const network = yield* Network.resolve(arch)
        const params = randomParams(network, 21)
        const size = Network.sampleSize(network.inputShape)
        const x = uniform(8, N * size)
        const y = labels(4, N, network.outputShape[0]!)
        const got = tfGradients(network, params, x, y)
        const p64 = toParams64(params)
        const trainable = new Map(network.params.filter((s) => s.trainable).map((s) => [s.name, p64.get(s.name)!] as const))
        const want = numericGradient(trainable, () => crossEntropy64(forward64(network, p64, x, N, true).output, y))
        assert.deepStrictEqual([...got.keys()].sort(), [...want.keys()].sort())
        for (const [name, g] of want) expect(worstError(got.get(name)!, g, 1e-4, 1e-3), name).toBeLessThan(1)
      })
    )
  }
})
