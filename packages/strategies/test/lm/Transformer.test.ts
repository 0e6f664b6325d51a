/**
 * The transformers against plain PyTorch (float64) on the fixtures of `fixtures/lm/generate.py`:
 * gpt2, llama (GQA, llama3 rope scaling), llama tied with biases, qwen2 (q/k/v biases), qwen3
 * (q/k norm, head_dim ≠ hidden/heads), mistral (one kv head, sliding window, linear scaling).
 * Each loads its config.json and HF safetensors as transformers would, and must give the
 * reference's logits and the gradient of the mean next-token loss for every weight, on wasm and cpu.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import * as Safetensors from "@crucible/core/io/safetensors/Safetensors"
import * as TensorRef from "@crucible/core/tensor/TensorRef"
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import * as path from "node:path"
import { Backend } from "../../src/backend/Backend.ts"
import * as LmConfig from "../../src/lm/LmConfig.ts"
import * as LmWeights from "../../src/lm/LmWeights.ts"
import * as Transformer from "../../src/lm/Transformer.ts"

const FIXTURES = path.join(import.meta.dirname, "..", "..", "fixtures", "lm")
const CASES = ["gpt2", "llama", "llama-tied", "qwen2", "qwen3", "mistral"] as const

// float32 forward passes of depth 2 on O(1) activations: the logits (|z| ≲ 5) differ from float64 by
// a few 1e-6; 1e-4 absolute is the bound. Gradients: per tensor, the largest error relative
// to the tensor's largest |g| (so near-zero entries do not dominate), bound 1e-3 as the issue asks.
const LOGITS_ATOL = 1e-4
const GRAD_RTOL = 1e-3

const loadCase = (name: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const folder = path.join(FIXTURES, name)
      const config = yield* LmConfig.read(folder)
      const weights = yield* LmWeights.fromModel(config, yield* Safetensors.read(path.join(folder, "model.safetensors")))
      const ref = yield* Safetensors.read(path.join(folder, "reference.safetensors"))
      const get = (key: string) => {
        const t = ref.tensors.get(key)
        assert.isDefined(t, key)
        return Effect.map(TensorRef.readFloat32(t!), (data) => ({ shape: t!.shape, data }))
      }
      const ids = yield* get("ids")
      const grads = new Map<string, Float32Array>()
      for (const spec of LmWeights.specs(config)) grads.set(spec.name, (yield* get(`grad.${spec.name}`)).data)
      return {
        config,
        weights,
        B: ids.shape[0]!,
        T: ids.shape[1]!,
        ids: Int32Array.from(ids.data),
        targets: Int32Array.from((yield* get("targets")).data),
        logits: (yield* get("logits")).data,
        loss: (yield* get("loss")).data[0]!,
        grads
      }
    })
  )

type Case = Effect.Success<ReturnType<typeof loadCase>>

/** Logits, loss and HF-layout gradients on the active backend; every tensor it makes is released. */
const runCase = async (c: Case) => {
  const before = tf.memory().numTensors
  const device = Transformer.upload(c.config, c.weights)
  const ids = tf.tensor2d(c.ids, [c.B, c.T], "int32")
  const targets = tf.tensor2d(c.targets, [c.B, c.T], "int32")
  try {
    const logits = tf.tidy(() => Transformer.logits(device, ids))
    const logitsData = (await logits.data()) as Float32Array
    logits.dispose()
    const { value, grads } = tf.variableGrads(() => Transformer.nextTokenLoss(Transformer.logits(device, ids), targets))
    const loss = (await value.data())[0]!
    const hostGrads = await Transformer.gradients(device, grads)
    value.dispose()
    tf.dispose(grads)
    const weightsBack = await Transformer.download(device)
    return { logits: logitsData, loss, grads: hostGrads, weightsBack }
  } finally {
    ids.dispose()
    targets.dispose()
    device.dispose()
    assert.strictEqual(tf.memory().numTensors, before, "tensors leaked")
  }
}

const maxAbs = (a: ArrayLike<number>): number => {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!))
  return m
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  assert.strictEqual(a.length, b.length)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

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
