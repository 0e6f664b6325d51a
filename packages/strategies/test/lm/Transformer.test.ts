/**
 * The transformers against plain PyTorch (float64) on the fixtures of `fixtures/lm/generate.py`:
 * gpt2, llama (GQA, llama3 rope scaling), llama tied with biases, qwen2 (q/k/v biases), qwen3
 * (q/k norm, head_dim ≠ hidden/heads), mistral (one kv head, sliding window, linear scaling).
 * Each loads its config.json and HF safetensors as transformers would, and must give the
 * reference's logits and the gradient of the mean next-token loss for every weight, on wasm and cpu.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import { Backend } from "../../src/backend/Backend.ts"
import * as Transformer from "../../src/lm/Transformer.ts"
import { CASES, GRAD_RTOL, LOGITS_ATOL, loadCase, maxAbs, maxAbsDiff, runCase } from "./TransformerFixtures.ts"

for (const backend of ["wasm", "cpu"] as const) {
  describe(`transformers against PyTorch (${backend})`, () => {
    for (const name of CASES) {
      it.effect(`${name}: logits, loss and every weight's gradient`, () =>
        Effect.gen(function* () {
          yield* Effect.provide(Backend, Backend.layer(backend))
          assert.strictEqual(tf.getBackend(), backend)
          const c = yield* loadCase(name)
          const got = yield* Effect.promise(() => runCase(c))
          expect(maxAbsDiff(got.logits, c.logits), "logits").toBeLessThan(LOGITS_ATOL)
          expect(Math.abs(got.loss - c.loss)).toBeLessThan(1e-5)
          assert.deepStrictEqual([...got.grads.keys()].sort(), [...c.grads.keys()].sort())
          for (const [tensor, want] of c.grads) {
            const scale = maxAbs(want)
            expect(scale, `${tensor}: the reference gradient is not zero`).toBeGreaterThan(0)
            expect(maxAbsDiff(got.grads.get(tensor)!.data, want) / scale, tensor).toBeLessThan(GRAD_RTOL)
          }
          // download is upload's inverse (HF layout back, bit for bit)
          for (const [tensor, w] of c.weights) assert.deepStrictEqual(got.weightsBack.get(tensor)!.data, w.data, tensor)
        })
      )
    }
  })
}

/** `−mean(Σ onehot ⊙ x)`: a test-only op (Node's tfjs registers no gradients) that reads the targets' log-probabilities. */
const pickedMean = (logp: tf.Tensor3D, onehot: tf.Tensor3D, count: number): tf.Scalar =>
  tf.customGrad<tf.Scalar>((...args) => {
    const [x, save] = args as unknown as [tf.Tensor, (ts: Array<tf.Tensor>) => void]
    save([onehot])
    return {
      value: tf.neg(tf.div(tf.sum(tf.mul(x, onehot)), count)) as tf.Scalar,
      gradFunc: (dy: tf.Scalar, saved: Array<tf.Tensor>) => [tf.mul(saved[0]!, tf.div(tf.neg(dy), count))]
    }
  })(logp)

describe("losses (wasm)", () => {
  it.effect("logSoftmax: −mean of the targets' log-probabilities has PyTorch's loss and gradients", () =>
    Effect.gen(function* () {
      yield* Effect.provide(Backend, Backend.layer("wasm"))
      for (const name of ["gpt2", "qwen3"]) {
        const c = yield* loadCase(name)
        const got = yield* Effect.promise(async () => {
          const device = Transformer.upload(c.config, c.weights)
          const ids = tf.tensor2d(c.ids, [c.B, c.T], "int32")
          const onehot = tf.oneHot(tf.tensor2d(c.targets, [c.B, c.T], "int32"), c.config.vocabSize) as tf.Tensor3D
          const { value, grads } = tf.variableGrads(() => pickedMean(Transformer.logSoftmax(Transformer.logits(device, ids)), onehot, c.B * c.T))
          const out = { loss: (await value.data())[0]!, grads: await Transformer.gradients(device, grads) }
          tf.dispose([value, ids, onehot, ...Object.values(grads)])
          device.dispose()
          return out
        })
        expect(Math.abs(got.loss - c.loss)).toBeLessThan(1e-5)
        for (const [tensor, want] of c.grads) expect(maxAbsDiff(got.grads.get(tensor)!.data, want) / maxAbs(want), tensor).toBeLessThan(GRAD_RTOL)
      }
    })
  )

  it.effect("nextTokenLoss ignores negative targets: the mean is over the others", () =>
    Effect.gen(function* () {
      yield* Effect.provide(Backend, Backend.layer("wasm"))
      const c = yield* loadCase("llama")
      const V = c.config.vocabSize
      // the second sequence's targets ignored, and the first's last: the float64 mean over the rest, from the reference logits
      const targets = Int32Array.from(c.targets, (t, i) => (i >= c.T - 1 ? -100 : t))
      let sum = 0
      for (let i = 0; i < c.T - 1; i++) {
        const row = c.logits.subarray(i * V, (i + 1) * V)
        const max = Math.max(...row)
        sum += Math.log(row.reduce((s, z) => s + Math.exp(z - max), 0)) + max - row[targets[i]!]!
      }
      const loss = yield* Effect.promise(async () => {
        const logits = tf.tensor3d(c.logits, [c.B, c.T, V])
        const t = tf.tensor2d(targets, [c.B, c.T], "int32")
        const value = Transformer.nextTokenLoss(logits, t)
        const out = (await value.data())[0]!
        tf.dispose([logits, t, value])
        return out
      })
      expect(Math.abs(loss - sum / (c.T - 1))).toBeLessThan(1e-5)
    })
  )

  it.effect("gpt2 refuses more tokens than it has positions", () =>
    Effect.gen(function* () {
      yield* Effect.provide(Backend, Backend.layer("wasm"))
      const c = yield* loadCase("gpt2")
      const device = Transformer.upload(c.config, c.weights)
      const ids = tf.zeros([1, c.config.maxPositions + 1], "int32") as tf.Tensor2D
      expect(() => tf.tidy(() => Transformer.logits(device, ids))).toThrow(/10 tokens exceed the model's 9 positions/)
      ids.dispose()
      device.dispose()
    })
  )
})
