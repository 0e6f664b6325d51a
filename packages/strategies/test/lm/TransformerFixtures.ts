/**
 * The PyTorch reference cases of `fixtures/lm/` (made by `fixtures/lm/generate.py`), and running
 * one on the active TF.js backend: logits, loss and every weight's gradient, read asynchronously.
 */
import { assert } from "@effect/vitest"
import * as Safetensors from "@crucible/core/io/safetensors/Safetensors"
import * as TensorRef from "@crucible/core/tensor/TensorRef"
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import * as path from "node:path"
import * as LmConfig from "../../src/lm/LmConfig.ts"
import * as LmWeights from "../../src/lm/LmWeights.ts"
import * as Transformer from "../../src/lm/Transformer.ts"

export const FIXTURES = path.join(import.meta.dirname, "..", "..", "fixtures", "lm")
export const CASES = ["gpt2", "llama", "llama-tied", "qwen2", "qwen3", "mistral"] as const

// float32 forward passes of depth 2 on O(1) activations: the logits (|z| ≲ 5) differ from float64 by
// a few 1e-6; 1e-4 absolute is the bound. Gradients: per tensor, the largest error relative
// to the tensor's largest |g| (so near-zero entries do not dominate), bound 1e-3 as the issue asks.
export const LOGITS_ATOL = 1e-4
export const GRAD_RTOL = 1e-3

export const loadCase = (name: string) =>
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

export type Case = Effect.Success<ReturnType<typeof loadCase>>

/** Logits, loss and HF-layout gradients on the active backend; every tensor it makes is released. */
export const runCase = async (c: Case) => {
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

export const maxAbs = (a: ArrayLike<number>): number => {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!))
  return m
}

export const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  assert.strictEqual(a.length, b.length)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

