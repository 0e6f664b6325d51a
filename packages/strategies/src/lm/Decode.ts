/**
 * Incremental decoding with a key/value cache: {@link prefill} runs the forward pass over a prompt
 * once and keeps every layer's keys and values; {@link step} appends one token per sequence,
 * running the forward pass for that position only (its queries against the cached keys), so a new
 * token costs one position's pass instead of the whole window's. Both give the last position's
 * logits — what generation needs — and not the others.
 *
 * The math is {@link Transformer.logits}'s, op for op (`Ops`): gpt2 adds the learned positions of
 * the new tokens (`wpe` rows from the cache's length); llama rotates the new queries and keys at
 * their absolute positions (RoPE tables from an offset, bit for bit the full tables' rows) and
 * caches the keys rotated (after q/k norm), `[B, kvHeads, t, D]`, so grouped-query heads read them
 * as they do in the full pass; a sliding window is a mask over the cached keys (the cache keeps
 * them all: it never outgrows the model's positions, see Generate.ts). Inference only: the ops are
 * differentiable but nothing here is meant for `tf.variableGrads`.
 *
 * Ownership: each call returns new tensors (the logits and a new cache) that the caller disposes
 * ({@link dispose} for a cache); `step` leaves the cache it was given alone, so the caller
 * disposes the old one once it has the new one. Synchronous; run it where a failure is caught.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs-core"
import * as Ops from "./Ops.ts"
import type * as Transformer from "./Transformer.ts"

/**
 * Every layer's keys and values so far, each `[B, kvHeads, length, D]` (llama's keys rotated;
 * gpt2's `kvHeads` is its heads). @category models
 */
export interface KvCache {
  readonly batch: number
  /** Positions cached (the next token's position). */
  readonly length: number
  readonly keys: ReadonlyArray<tf.Tensor4D>
  readonly values: ReadonlyArray<tf.Tensor4D>
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

const variable = (device: Transformer.LmDevice, name: string): tf.Variable => {
  const v = device.variables.get(name)
  if (v === undefined) throw new RangeError(`decode: no variable "${name}" (the device does not match its config)`)
  return v
}
const v1 = (device: Transformer.LmDevice, name: string) => variable(device, name) as tf.Variable<tf.Rank.R1>
const v2 = (device: Transformer.LmDevice, name: string) => variable(device, name) as tf.Variable<tf.Rank.R2>
const bias = (device: Transformer.LmDevice, name: string, present: boolean) => (present ? v1(device, name) : undefined)

/** One layer's new keys and values appended to the cached ones (none cached: the new ones). */
const append = (cached: tf.Tensor4D | undefined, fresh: tf.Tensor4D): tf.Tensor4D => (cached === undefined ? fresh : tf.concat([cached, fresh], 2))

interface Pass {
  readonly hidden: tf.Tensor2D
  readonly keys: ReadonlyArray<tf.Tensor4D>
  readonly values: ReadonlyArray<tf.Tensor4D>
}

const gpt2Pass = (device: Transformer.LmDevice, ids: tf.Tensor2D, cache: KvCache | undefined): Pass => {
  const c = device.config
  const [B, T] = ids.shape
  const H = c.hiddenSize
  const D = c.headDim
  const start = cache?.length ?? 0
  const mask = tf.tensor2d(Ops.causalMaskFrom(start, T), [T, start + T])
  const scale = 1 / Math.sqrt(D)
  const keys: Array<tf.Tensor4D> = []
  const values: Array<tf.Tensor4D> = []
  let h = Ops.residual(Ops.embedding(tf.reshape(ids, [-1]), v2(device, "transformer.wte.weight")), Ops.positionsFrom(v2(device, "transformer.wpe.weight"), start, B, T))
  for (let i = 0; i < c.layers; i++) {
    const p = `transformer.h.${i}`
    const x = Ops.layerNorm(h, v1(device, `${p}.ln_1.weight`), v1(device, `${p}.ln_1.bias`), c.normEps)
    const qkv = Ops.linear(x, v2(device, `${p}.attn.c_attn.weight`), v1(device, `${p}.attn.c_attn.bias`))
    const q = Ops.splitHeads(qkv, 0, B, T, c.heads, D)
    const k = append(cache?.keys[i], Ops.splitHeads(qkv, H, B, T, c.heads, D))
    const v = append(cache?.values[i], Ops.splitHeads(qkv, 2 * H, B, T, c.heads, D))
    keys.push(k)
    values.push(v)
    const o = Ops.mergeHeads(Ops.attention(q, k, v, mask, scale))
    h = Ops.residual(h, Ops.linear(o, v2(device, `${p}.attn.c_proj.weight`), v1(device, `${p}.attn.c_proj.bias`)))
    const x2 = Ops.layerNorm(h, v1(device, `${p}.ln_2.weight`), v1(device, `${p}.ln_2.bias`), c.normEps)
    const m = Ops.geluNew(Ops.linear(x2, v2(device, `${p}.mlp.c_fc.weight`), v1(device, `${p}.mlp.c_fc.bias`)))
    h = Ops.residual(h, Ops.linear(m, v2(device, `${p}.mlp.c_proj.weight`), v1(device, `${p}.mlp.c_proj.bias`)))
  }
  return { hidden: Ops.layerNorm(lastPositions(h, B, T), v1(device, "transformer.ln_f.weight"), v1(device, "transformer.ln_f.bias"), c.normEps), keys, values }
}

const llamaPass = (device: Transformer.LmDevice, ids: tf.Tensor2D, cache: KvCache | undefined): Pass => {
  const c = device.config
  const [B, T] = ids.shape
  const D = c.headDim
  const start = cache?.length ?? 0
  const mask = tf.tensor2d(Ops.causalMaskFrom(start, T, c.slidingWindow), [T, start + T])
  const tables = Ops.ropeTablesFrom(c, start, T)
  const cos = tf.tensor2d(tables.cos, [T, D])
  const sin = tf.tensor2d(tables.sin, [T, D])
  const scale = 1 / Math.sqrt(D)
  const keys: Array<tf.Tensor4D> = []
  const values: Array<tf.Tensor4D> = []
  let h = Ops.embedding(tf.reshape(ids, [-1]), v2(device, "model.embed_tokens.weight"))
  for (let i = 0; i < c.layers; i++) {
    const p = `model.layers.${i}`
    const a = `${p}.self_attn`
    const x = Ops.rmsNorm(h, v1(device, `${p}.input_layernorm.weight`), c.normEps)
    let q = Ops.splitHeads(Ops.linear(x, v2(device, `${a}.q_proj.weight`), bias(device, `${a}.q_proj.bias`, c.qkvBias)), 0, B, T, c.heads, D)
    let k = Ops.splitHeads(Ops.linear(x, v2(device, `${a}.k_proj.weight`), bias(device, `${a}.k_proj.bias`, c.qkvBias)), 0, B, T, c.kvHeads, D)
    const v = append(cache?.values[i], Ops.splitHeads(Ops.linear(x, v2(device, `${a}.v_proj.weight`), bias(device, `${a}.v_proj.bias`, c.qkvBias)), 0, B, T, c.kvHeads, D))
    if (c.qkNorm) {
      q = Ops.rmsNorm(q, v1(device, `${a}.q_norm.weight`), c.normEps)
      k = Ops.rmsNorm(k, v1(device, `${a}.k_norm.weight`), c.normEps)
    }
    const kAll = append(cache?.keys[i], Ops.rope(k, cos, sin))
    keys.push(kAll)
    values.push(v)
    const o = Ops.mergeHeads(Ops.attention(Ops.rope(q, cos, sin), kAll, v, mask, scale))
    h = Ops.residual(h, Ops.linear(o, v2(device, `${a}.o_proj.weight`), bias(device, `${a}.o_proj.bias`, c.oBias)))
    const x2 = Ops.rmsNorm(h, v1(device, `${p}.post_attention_layernorm.weight`), c.normEps)
    const m = `${p}.mlp`
    const gate = Ops.linear(x2, v2(device, `${m}.gate_proj.weight`), bias(device, `${m}.gate_proj.bias`, c.mlpBias))
    const up = Ops.linear(x2, v2(device, `${m}.up_proj.weight`), bias(device, `${m}.up_proj.bias`, c.mlpBias))
    h = Ops.residual(h, Ops.linear(Ops.swiglu(gate, up), v2(device, `${m}.down_proj.weight`), bias(device, `${m}.down_proj.bias`, c.mlpBias)))
  }
  return { hidden: Ops.rmsNorm(lastPositions(h, B, T), v1(device, "model.norm.weight"), c.normEps), keys, values }
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
  // tidy keeps what it returns: the logits, then every layer's keys, then its values
  const [logits, ...kv] = tf.tidy(() => {
    const pass = c.family === "gpt2" ? gpt2Pass(device, ids, cache) : llamaPass(device, ids, cache)
    const head = c.tied
      ? Ops.tiedHead(pass.hidden, v2(device, c.family === "gpt2" ? "transformer.wte.weight" : "model.embed_tokens.weight"))
      : Ops.linear(pass.hidden, v2(device, "lm_head.weight"))
    return [head, ...pass.keys, ...pass.values]
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
