/**
 * Continuations of a prompt by a language model, one token at a time: greedy (temperature 0:
 * the argmax, the first on ties) or sampled from `softmax(z/T)` over the `topK` most likely
 * tokens. A sample's uniform draw comes from the stream `derive(seed, "generate", prompt, step)`
 * (counter-based), so the output depends only on the seed, not on what ran before. Generation
 * stops after `maxNewTokens` tokens or at the end-of-sequence token (kept in the ids).
 *
 * Each step runs the forward pass over the whole window (at most the model's positions, the
 * newest tokens): no cache, which is fine for the tiny models this is for. Reads are asynchronous.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import * as Random from "../backend/Random.ts"
import { LmBackendError } from "./LmError.ts"
import * as Transformer from "./Transformer.ts"

/** @category models */
export interface GenerateOptions {
  readonly maxNewTokens: number
  /** 0: greedy; > 0: sampled at this temperature. */
  readonly temperature: number
  /** Sample among the k most likely tokens only (default: all). */
  readonly topK?: number | undefined
  readonly seed: number
  /** Stop after generating this token. */
  readonly eos?: number | undefined
}

/** The index of the largest value (the first on ties). */
const argmax = (values: ArrayLike<number>): number => {
  let best = 0
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i
  return best
}

/**
 * The next token from the last position's logits: greedy, or the token whose cumulative
 * probability (float64, tokens by decreasing logit, ties by index) first exceeds the draw `u ∈ [0, 1)`.
 */
export const pick = (logits: ArrayLike<number>, options: Pick<GenerateOptions, "temperature" | "topK">, u: number): number => {
  if (options.temperature === 0) return argmax(logits)
  const order = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b)
  const kept = order.slice(0, Math.min(options.topK ?? order.length, order.length))
  const max = logits[kept[0]!]! / options.temperature
  const weights = kept.map((i) => Math.exp(logits[i]! / options.temperature - max))
  const total = weights.reduce((a, b) => a + b, 0)
  let cumulative = 0
  for (let j = 0; j < kept.length; j++) {
    cumulative += weights[j]! / total
    if (u < cumulative) return kept[j]!
  }
  return kept[kept.length - 1]!
}

/** The generated ids after `prompt` (prompt number `index`, for the sampling streams). */
export const generate = (device: Transformer.LmDevice, prompt: Int32Array, options: GenerateOptions, index = 0) =>
  Effect.gen(function* () {
    const failure = LmBackendError.of("generating")
    const window = device.config.maxPositions
    const ids = Array.from(prompt)
    const out: Array<number> = []
    for (let step = 0; step < options.maxNewTokens; step++) {
      const context = ids.slice(-window)
      const last = yield* Effect.try({
        try: () =>
          tf.tidy(() => {
            const z = Transformer.logits(device, tf.tensor2d(Int32Array.from(context), [1, context.length], "int32"))
            return tf.slice(z, [0, context.length - 1, 0], [1, 1, z.shape[2]])
          }),
        catch: failure
      })
      const logits = yield* Effect.tryPromise({ try: () => last.data() as Promise<Float32Array>, catch: failure }).pipe(Effect.ensuring(Effect.sync(() => last.dispose())))
      const u = options.temperature === 0 ? 0 : Random.make(Random.derive(options.seed, "generate", index, step)).next()
      const next = pick(logits, options, u)
      ids.push(next)
      out.push(next)
      if (next === options.eos) break
      yield* Effect.yieldNow
    }
    return Int32Array.from(out)
  })
