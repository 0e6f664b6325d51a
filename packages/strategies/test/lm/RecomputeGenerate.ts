/**
 * The reference `lm/Generate.ts` is checked against (test/lm/DecodeChecks.ts) and timed against
 * (bench/lm/generate.ts): generation as it ran before the key/value cache, the full forward pass
 * (`Transformer.logits`) over the newest `maxPositions` ids for every token, with Generate's own
 * `pick` and sampling streams.
 */
import * as tf from "@tensorflow/tfjs-core"
import * as Random from "../../src/backend/Random.ts"
import * as Generate from "../../src/lm/Generate.ts"
import * as Transformer from "../../src/lm/Transformer.ts"

/** The last position's logits `[B·V]` of logits `[B, T, V]`. */
export const readLast = async (z: tf.Tensor3D): Promise<Float32Array> => {
  const [B, T, V] = z.shape
  const last = tf.slice(z, [0, T - 1, 0], [B, 1, V])
  try {
    return (await last.data()) as Float32Array
  } finally {
    last.dispose()
  }
}

/** Generate as it was before the cache: the forward pass over the newest `maxPositions` ids at every step. */
export const recomputeGenerate = async (device: Transformer.LmDevice, prompt: Int32Array, options: Generate.GenerateOptions, index = 0): Promise<Array<number>> => {
  const window = device.config.maxPositions
  const ids = Array.from(prompt)
  const out: Array<number> = []
  for (let step = 0; step < options.maxNewTokens; step++) {
    const context = ids.slice(-window)
    const z = tf.tidy(() => Transformer.logits(device, tf.tensor2d(Int32Array.from(context), [1, context.length], "int32")))
    const logits = await readLast(z)
    z.dispose()
    const u = options.temperature === 0 ? 0 : Random.make(Random.derive(options.seed, "generate", index, step)).next()
    const next = Generate.pick(logits, options, u)
    ids.push(next)
    out.push(next)
    if (next === options.eos) break
  }
  return out
}
