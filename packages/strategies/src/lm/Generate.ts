/**
 * Continuations of a prompt by a language model, one token at a time: greedy (temperature 0:
 * the argmax, the first on ties) or sampled from `softmax(z/T)` over the `topK` most likely
 * tokens. A sample's uniform draw comes from the stream `derive(seed, "generate", prompt, step)`
 * (counter-based), so the output depends only on the seed, not on what ran before. Generation
 * stops after `maxNewTokens` tokens or at the end-of-sequence token (kept in the ids).
 *
 * Decoding is incremental (`Decode.ts`): the prompt is run once (prefill) and each new token
 * runs one position's forward pass against the cached keys and values of the earlier ones. The
 * context is the newest `maxPositions` tokens (the model's positions), as it always was: once the
 * ids outgrow it, the window slides, and since a slid window changes every token's absolute
 * position (gpt2's learned `wpe`, llama's RoPE) and drops the oldest token every layer attended
 * to, the cache is then rebuilt by a prefill over the newest `maxPositions` tokens at each step —
 * the full-window recompute, the same logits it gave before the cache existed. Reads are asynchronous.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import * as Random from "../backend/Random.ts"
import * as Decode from "./Decode.ts"
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

/**
 * The last position's logits for the next token after `ids`: a step on `cache` when it holds every
 * id but the newest and has room for it, else a prefill of the newest `window` ids.
 */
const advance = (device: Transformer.LmDevice, ids: ReadonlyArray<number>, cache: Decode.KvCache | undefined, window: number): Decode.Decoded => {
  if (cache !== undefined && cache.length === ids.length - 1 && cache.length < window) return Decode.step(device, cache, Int32Array.of(ids[ids.length - 1]!))
  const context = Int32Array.from(ids.slice(-window))
  const t = tf.tensor2d(context, [1, context.length], "int32")
  try {
    return Decode.prefill(device, t)
  } finally {
    t.dispose()
  }
}

/** The generated ids after `prompt` (prompt number `index`, for the sampling streams). */
export const generate = (device: Transformer.LmDevice, prompt: Int32Array, options: GenerateOptions, index = 0) =>
  Effect.suspend(() => {
    // the cache of the ids so far (this call's own; released however the loop ends)
    let cache: Decode.KvCache | undefined
    return Effect.gen(function* () {
      const failure = LmBackendError.of("generating")
      const window = device.config.maxPositions
      const ids = Array.from(prompt)
      const out: Array<number> = []
      for (let step = 0; step < options.maxNewTokens; step++) {
        const next = yield* Effect.try({ try: () => advance(device, ids, cache, window), catch: failure })
        if (cache !== undefined) Decode.dispose(cache)
        cache = next.cache
        const last = next.logits
        const logits = yield* Effect.tryPromise({ try: () => last.data() as Promise<Float32Array>, catch: failure }).pipe(Effect.ensuring(Effect.sync(() => last.dispose())))
        const u = options.temperature === 0 ? 0 : Random.make(Random.derive(options.seed, "generate", index, step)).next()
        const token = pick(logits, options, u)
        ids.push(token)
        out.push(token)
        if (token === options.eos) break
        yield* Effect.yieldNow
      }
      return Int32Array.from(out)
    }).pipe(
      Effect.ensuring(
        Effect.sync(() => {
          if (cache !== undefined) Decode.dispose(cache)
        })
      )
    )
  })
