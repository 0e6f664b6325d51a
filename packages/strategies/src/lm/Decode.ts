/**
 * Incremental decoding with a key/value cache: {@link prefill} runs the forward pass over a prompt
 * once and keeps every layer's keys and values; {@link step} appends one token per sequence,
 * running the forward pass for that position only (its queries against the cached keys), so a new
 * token costs one position's pass instead of the whole window's. Both give the last position's
 * logits — what generation needs — and not the others.
 *
 * The pass is {@link Transformer.pass}, the one {@link Transformer.logits} runs, given the cache as
 * its past: gpt2 adds the learned positions of the new tokens (`wpe` rows from the cache's
 * length); llama rotates the new queries and keys at their absolute positions (RoPE tables from an
 * offset, bit for bit the full tables' rows) and caches the keys rotated (after q/k norm),
 * `[B, kvHeads, t, D]`, so grouped-query heads read them as they do in the full pass; a sliding
 * window is a mask over the cached keys (the cache keeps them all: it never outgrows the model's
 * positions, see Generate.ts). Inference only.
 *
 * Ownership: each call returns new tensors (the logits and a new cache) that the caller disposes
 * ({@link dispose} for a cache); `step` leaves the cache it was given alone, so the caller
 * disposes the old one once it has the new one. Synchronous; run it where a failure is caught.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs-core"
import * as Transformer from "./Transformer.ts"

/**
 * Every layer's keys and values so far, each `[B, kvHeads, length, D]` (llama's keys rotated;
 * gpt2's `kvHeads` is its heads): `Transformer.Past` and its batch size. @category models
 */
export interface KvCache extends Transformer.Past {
  readonly batch: number
  /** Positions cached (the next token's position). */
  readonly length: number
}

/** The last position's logits `[B, V]` (float32) and the cache including the tokens just run. @category models */
export interface Decoded {
  readonly logits: tf.Tensor2D
  readonly cache: KvCache
}

/** Releases a cache's tensors. @category destructors */
export const dispose = (cache: KvCache): void => {
  tf.dispose([...cache.keys, ...cache.values])
}

/** The rows of each sequence's last position, `[B·T, H]` → `[B, H]` (the final norm and head run on those only: both are per row). */
const lastPositions = (h: tf.Tensor2D, B: number, T: number): tf.Tensor2D => {
  if (T === 1) return h
  const H = h.shape[1]
  return tf.reshape(tf.slice(tf.reshape(h, [B, T, H]), [0, T - 1, 0], [B, 1, H]), [B, H])
}

/** Runs `ids` `[B, T]` after `cache` (none: from position 0). */
const extend = (device: Transformer.LmDevice, ids: tf.Tensor2D, cache: KvCache | undefined): Decoded => {
  const c = device.config
  if (ids.rank !== 2 || ids.shape[1] === 0) throw new RangeError(`decode: ids must be [B, T] with T ≥ 1, got shape [${ids.shape.join(", ")}]`)
  const [B, T] = ids.shape
  const start = cache?.length ?? 0
  if (cache !== undefined && cache.batch !== B) throw new RangeError(`decode: ${B} sequences after a cache of ${cache.batch}`)
  if (c.family === "gpt2" && start + T > c.maxPositions)
    throw new RangeError(`decode: ${start + T} tokens exceed the model's ${c.maxPositions} positions (n_positions); re-prefill the newest ${c.maxPositions}`)
  // tidy keeps what it returns: the logits, then every layer's keys, then its values. The head runs
  // on the last positions only (it is per row).
  const [logits, ...kv] = tf.tidy(() => {
    const pass = Transformer.pass(device, ids, cache)
    return [Transformer.head(device, lastPositions(pass.hidden, B, T)), ...pass.keys, ...pass.values]
  })
  return {
    logits: logits as tf.Tensor2D,
    cache: { batch: B, length: start + T, keys: kv.slice(0, c.layers) as Array<tf.Tensor4D>, values: kv.slice(c.layers) as Array<tf.Tensor4D> }
  }
}

/**
 * The forward pass over `ids` `[B, T]` (int32, T ≥ 1) from position 0: the last position's logits
 * `[B, V]` and the cache of all `T` positions. A gpt2 prompt longer than its positions is a
 * `RangeError` (as in `Transformer.logits`).
 *
 * @category models
 */
export const prefill = (device: Transformer.LmDevice, ids: tf.Tensor2D): Decoded => extend(device, ids, undefined)

/**
 * One more token per sequence (`next`, one id each, `B = cache.batch`) at position `cache.length`:
 * its logits `[B, V]` and a new cache one longer. `cache` is not disposed (the caller does, once
 * it has the new one). gpt2 past its positions is a `RangeError`.
 *
 * @category models
 */
export const step = (device: Transformer.LmDevice, cache: KvCache, next: Int32Array): Decoded => {
  if (next.length !== cache.batch) throw new RangeError(`decode: ${next.length} next ids for a cache of ${cache.batch} sequences`)
  const ids = tf.tensor2d(next, [cache.batch, 1], "int32")
  try {
    return extend(device, ids, cache)
  } finally {
    ids.dispose()
  }
}
