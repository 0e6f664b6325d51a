/**
 * A gpt2- or llama-family transformer on TF.js: weights uploaded as variables (HF names; linear
 * weights transposed to `[in, out]`), the forward pass to logits as a graph of `Ops` (every op
 * differentiable, so `tf.variableGrads` of a loss over {@link logits} gives every weight's
 * gradient), and the next-token loss. Reads are asynchronous only (the webgpu backend cannot read
 * synchronously).
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs-core"
import type { HostTensor } from "../models/Layout.ts"
import type { LmConfig } from "./LmConfig.ts"
import * as LmWeights from "./LmWeights.ts"
import * as Ops from "./Ops.ts"

/** A model's weights on the device. @category models */
export interface LmDevice {
  readonly config: LmConfig
  /**
   * Variables by HF name, in device layout (nn.Linear weights `[in, out]`). Their `name`s are
   * TF.js's own (unique per variable): `tf.variableGrads` keys gradients by `variable.name`.
   */
  readonly variables: ReadonlyMap<string, tf.Variable>
  readonly dispose: () => void
}

const layoutOf = (config: LmConfig): ReadonlyMap<string, LmWeights.SpecLayout> => new Map(LmWeights.specs(config).map((s) => [s.name, s.layout] as const))

/**
 * Uploads `weights` (HF layout) as variables, trainable unless `trainable: false` (a teacher).
 *
 * @category constructors
 */
export const upload = (config: LmConfig, weights: LmWeights.LmWeights, options?: { readonly trainable?: boolean }): LmDevice => {
  const trainable = options?.trainable ?? true
  const variables = new Map<string, tf.Variable>()
  try {
    for (const spec of LmWeights.specs(config)) {
      const t = weights.get(spec.name)
      if (t === undefined) throw new RangeError(`upload: the weights lack "${spec.name}" (validate them with LmWeights.validate first)`)
      const v = tf.tidy(() => {
        const host = tf.tensor(t.data, [...t.shape], "float32")
        return tf.variable(spec.layout === "linear" ? tf.transpose(host) : host, trainable)
      })
      variables.set(spec.name, v)
    }
  } catch (e) {
    for (const v of variables.values()) v.dispose()
    throw e
  }
  return { config, variables, dispose: () => variables.forEach((v) => v.dispose()) }
}

/**
 * Device tensors keyed by HF name (variables, or their gradients) back on the host in HF layout.
 *
 * @category getters
 */
const toHost = async (config: LmConfig, tensors: ReadonlyMap<string, tf.Tensor>): Promise<LmWeights.LmWeights> => {
  const layouts = layoutOf(config)
  const out = new Map<string, HostTensor>()
  for (const [name, t] of tensors) {
    const hf = layouts.get(name) === "linear" ? tf.transpose(t) : t
    try {
      out.set(name, { shape: hf.shape, data: (await hf.data()) as Float32Array })
    } finally {
      if (hf !== t) hf.dispose()
    }
  }
  return out
}

/**
 * The weights now on the device, HF names and layouts.
 *
 * @category getters
 */
export const download = (device: LmDevice): Promise<LmWeights.LmWeights> => toHost(device.config, device.variables)

/**
 * The gradients `tf.variableGrads` returned (keyed by variable name) by HF name in HF layout.
 *
 * @category getters
 */
export const gradients = (device: LmDevice, grads: tf.NamedTensorMap): Promise<LmWeights.LmWeights> => {
  const byHf = new Map<string, tf.Tensor>()
  for (const [name, v] of device.variables) {
    const g = grads[v.name]
    if (g !== undefined) byHf.set(name, g)
  }
  return toHost(device.config, byHf)
}

const variable = (device: LmDevice, name: string): tf.Variable => {
  const v = device.variables.get(name)
  if (v === undefined) throw new RangeError(`transformer: no variable "${name}" (the device does not match its config)`)
  return v
}

const v1 = (device: LmDevice, name: string) => variable(device, name) as tf.Variable<tf.Rank.R1>
const v2 = (device: LmDevice, name: string) => variable(device, name) as tf.Variable<tf.Rank.R2>
const bias = (device: LmDevice, name: string, present: boolean) => (present ? v1(device, name) : undefined)

/**
 * Keys and values of the positions before a pass, each layer's `[B, kvHeads, t, D]` (llama's keys
 * rotated, after q/k norm; gpt2's `kvHeads` is its heads): `Decode.ts`'s cache. @category models
 */
export interface Past {
  readonly length: number
  readonly keys: ReadonlyArray<tf.Tensor4D>
  readonly values: ReadonlyArray<tf.Tensor4D>
}

/**
 * A forward pass: the final hidden states `[B·T, H]` (after the final norm) of the tokens run, and
 * every layer's keys and values so far (the past's, then theirs). @category models
 */
export interface Pass {
  readonly hidden: tf.Tensor2D
  readonly keys: ReadonlyArray<tf.Tensor4D>
  readonly values: ReadonlyArray<tf.Tensor4D>
}

/** One layer's new keys or values after the past's (none: the new ones). */
const after = (past: tf.Tensor4D | undefined, fresh: tf.Tensor4D): tf.Tensor4D => (past === undefined ? fresh : tf.concat([past, fresh], 2))

const gpt2Pass = (device: LmDevice, ids: tf.Tensor2D, past: Past | undefined): Pass => {
  const c = device.config
  const [B, T] = ids.shape
  const H = c.hiddenSize
  const D = c.headDim
  const start = past?.length ?? 0
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
    const k = after(past?.keys[i], Ops.splitHeads(qkv, H, B, T, c.heads, D))
    const v = after(past?.values[i], Ops.splitHeads(qkv, 2 * H, B, T, c.heads, D))
    keys.push(k)
    values.push(v)
    const o = Ops.mergeHeads(Ops.attention(q, k, v, mask, scale))
    h = Ops.residual(h, Ops.linear(o, v2(device, `${p}.attn.c_proj.weight`), v1(device, `${p}.attn.c_proj.bias`)))
    const x2 = Ops.layerNorm(h, v1(device, `${p}.ln_2.weight`), v1(device, `${p}.ln_2.bias`), c.normEps)
    const m = Ops.geluNew(Ops.linear(x2, v2(device, `${p}.mlp.c_fc.weight`), v1(device, `${p}.mlp.c_fc.bias`)))
    h = Ops.residual(h, Ops.linear(m, v2(device, `${p}.mlp.c_proj.weight`), v1(device, `${p}.mlp.c_proj.bias`)))
  }
  return { hidden: Ops.layerNorm(h, v1(device, "transformer.ln_f.weight"), v1(device, "transformer.ln_f.bias"), c.normEps), keys, values }
}

const llamaPass = (device: LmDevice, ids: tf.Tensor2D, past: Past | undefined): Pass => {
  const c = device.config
  const [B, T] = ids.shape
  const D = c.headDim
  const start = past?.length ?? 0
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
    const v = after(past?.values[i], Ops.splitHeads(Ops.linear(x, v2(device, `${a}.v_proj.weight`), bias(device, `${a}.v_proj.bias`, c.qkvBias)), 0, B, T, c.kvHeads, D))
    if (c.qkNorm) {
      q = Ops.rmsNorm(q, v1(device, `${a}.q_norm.weight`), c.normEps)
      k = Ops.rmsNorm(k, v1(device, `${a}.k_norm.weight`), c.normEps)
    }
    const rotated = after(past?.keys[i], Ops.rope(k, cos, sin))
    keys.push(rotated)
    values.push(v)
    const o = Ops.mergeHeads(Ops.attention(Ops.rope(q, cos, sin), rotated, v, mask, scale))
    h = Ops.residual(h, Ops.linear(o, v2(device, `${a}.o_proj.weight`), bias(device, `${a}.o_proj.bias`, c.oBias)))
    const x2 = Ops.rmsNorm(h, v1(device, `${p}.post_attention_layernorm.weight`), c.normEps)
    const m = `${p}.mlp`
    const gate = Ops.linear(x2, v2(device, `${m}.gate_proj.weight`), bias(device, `${m}.gate_proj.bias`, c.mlpBias))
    const up = Ops.linear(x2, v2(device, `${m}.up_proj.weight`), bias(device, `${m}.up_proj.bias`, c.mlpBias))
    h = Ops.residual(h, Ops.linear(Ops.swiglu(gate, up), v2(device, `${m}.down_proj.weight`), bias(device, `${m}.down_proj.bias`, c.mlpBias)))
  }
  return { hidden: Ops.rmsNorm(h, v1(device, "model.norm.weight"), c.normEps), keys, values }
}

/**
 * The forward pass of `ids` `[B, T]` (int32) after `past` (none: from position 0), one architecture
 * for training ({@link logits}) and incremental decoding (`Decode.ts`). Call it inside `tf.tidy`
 * or `tf.variableGrads`: its intermediates (masks, RoPE tables) belong to the caller's scope.
 *
 * @category models
 */
export const pass = (device: LmDevice, ids: tf.Tensor2D, past?: Past): Pass =>
  device.config.family === "gpt2" ? gpt2Pass(device, ids, past) : llamaPass(device, ids, past)

/** The language-model head over hidden states `[N, H]` → logits `[N, V]`: the tied embedding or `lm_head`. @category models */
export const head = (device: LmDevice, hidden: tf.Tensor2D): tf.Tensor2D => {
  const c = device.config
  return c.tied
    ? Ops.tiedHead(hidden, v2(device, c.family === "gpt2" ? "transformer.wte.weight" : "model.embed_tokens.weight"))
    : Ops.linear(hidden, v2(device, "lm_head.weight"))
}

/**
 * Logits `[B, T, V]` (float32) of the token ids `[B, T]` (int32), differentiable with respect to
 * the variables. Call it inside `tf.tidy` or `tf.variableGrads`: its intermediates (masks, RoPE
 * tables) belong to the caller's scope.
 *
 * @category models
 */
export const logits = (device: LmDevice, ids: tf.Tensor2D): tf.Tensor3D => {
  const c = device.config
  if (ids.rank !== 2) throw new RangeError(`logits: ids must be [B, T], got shape [${ids.shape.join(", ")}]`)
  const [B, T] = ids.shape
  if (c.family === "gpt2" && T > c.maxPositions) throw new RangeError(`logits: ${T} tokens exceed the model's ${c.maxPositions} positions (n_positions)`)
  return Ops.reshape<tf.Tensor3D>(head(device, pass(device, ids).hidden), [B, T, c.vocabSize])
}

/**
 * Mean next-token cross-entropy of `logits` `[B, T, V]` against `targets` `[B, T]` (int32: the
 * ids shifted by one; negative targets are ignored). Differentiable.
 *
 * @category models
 */
export const nextTokenLoss = (logits: tf.Tensor3D, targets: tf.Tensor2D): tf.Scalar => Ops.crossEntropy(logits, targets)

/**
 * Log-probabilities over the vocabulary, `[B, T, V]`. Differentiable (for distillation losses).
 *
 * @category models
 */
export const logSoftmax = (logits: tf.Tensor3D): tf.Tensor3D => Ops.logSoftmax(logits)
