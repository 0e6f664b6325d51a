/**
 * Incremental decoding (`lm/Decode.ts`, `lm/Generate.ts`) held to the full forward pass on the
 * fixtures of `fixtures/lm/`: the last position's logits after a prefill and each step against
 * `Transformer.logits` of the same prefix (the recompute Generate did before the cache) and
 * against the PyTorch reference (causal: the full sequence's logits at position t are the prefix's),
 * and generated ids against the recompute loop Generate used to run. Shared by the wasm/cpu and
 * webgpu tests; every tensor made is released (checked).
 */
import { assert } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import * as Decode from "../../src/lm/Decode.ts"
import * as Generate from "../../src/lm/Generate.ts"
import type { LmConfig } from "../../src/lm/LmConfig.ts"
import * as Transformer from "../../src/lm/Transformer.ts"
import { readLast, recomputeGenerate } from "./RecomputeGenerate.ts"
import { type Case, maxAbsDiff } from "./TransformerFixtures.ts"


/**
 * Prefills the first `prefix` tokens of every fixture sequence, then steps through the rest; at each
 * position the largest |difference| of the last logits `[B, V]` from the recompute's and from PyTorch's.
 */
export const decodeErrors = async (c: Case, prefix: number): Promise<{ readonly recompute: number; readonly pytorch: number; readonly positions: number }> => {
  const before = tf.memory().numTensors
  const device = Transformer.upload(c.config, c.weights, { trainable: false })
  const V = c.config.vocabSize
  const column = (t: number) => Int32Array.from({ length: c.B }, (_, b) => c.ids[b * c.T + t]!)
  const prefixIds = (t: number) => Int32Array.from({ length: c.B * t }, (_, i) => c.ids[Math.floor(i / t) * c.T + (i % t)]!)
  let recompute = 0
  let pytorch = 0
  let positions = 0
  let cache: Decode.KvCache | undefined
  try {
    for (let t = prefix; t <= c.T; t++) {
      let decoded: Decode.Decoded
      if (cache === undefined) {
        const ids = tf.tensor2d(prefixIds(t), [c.B, t], "int32")
        decoded = Decode.prefill(device, ids)
        ids.dispose()
      } else {
        decoded = Decode.step(device, cache, column(t - 1))
        Decode.dispose(cache)
      }
      cache = decoded.cache
      assert.strictEqual(cache.length, t)
      assert.deepStrictEqual(decoded.logits.shape, [c.B, V])
      const got = (await decoded.logits.data()) as Float32Array
      decoded.logits.dispose()
      const full = tf.tidy(() => Transformer.logits(device, tf.tensor2d(prefixIds(t), [c.B, t], "int32")))
      const want = await readLast(full)
      full.dispose()
      recompute = Math.max(recompute, maxAbsDiff(got, want))
      const ref = Float32Array.from({ length: c.B * V }, (_, i) => c.logits[(Math.floor(i / V) * c.T + t - 1) * V + (i % V)]!)
      pytorch = Math.max(pytorch, maxAbsDiff(got, ref))
      positions++
    }
  } finally {
    if (cache !== undefined) Decode.dispose(cache)
    device.dispose()
  }
  assert.strictEqual(tf.memory().numTensors, before, "tensors leaked")
  return { recompute, pytorch, positions }
}


/**
 * `Generate.generate` (cached) and {@link recomputeGenerate} on the fixture model with `maxPositions`
 * set to `window` (llama's RoPE has no table to outgrow; gpt2 keeps its own), from the first
 * sequence's first `promptLength` ids; no tensor left behind by generate.
 */
export const generateBoth = (c: Case, window: number, promptLength: number, options: Generate.GenerateOptions) =>
  Effect.gen(function* () {
    const config: LmConfig = { ...c.config, maxPositions: window }
    const device = Transformer.upload(config, c.weights, { trainable: false })
    const prompt = c.ids.slice(0, promptLength)
    try {
      const before = tf.memory().numTensors
      const cached = Array.from(yield* Generate.generate(device, prompt, options, 2))
      assert.strictEqual(tf.memory().numTensors, before, "generate leaked tensors")
      const recomputed = yield* Effect.promise(() => recomputeGenerate(device, prompt, options, 2))
      return { cached, recomputed }
    } finally {
      device.dispose()
    }
  })
