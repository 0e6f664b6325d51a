/**
 * A language model's weights on the host: every tensor by its Hugging Face name, in the layout
 * transformers stores it (so a safetensors file written by `save_pretrained` loads unchanged, and
 * one written here loads in transformers), as float32.
 *
 * - gpt2: `transformer.wte`, `transformer.wpe`, per layer `transformer.h.{i}.ln_1`,
 *   `attn.c_attn`, `attn.c_proj`, `ln_2`, `mlp.c_fc`, `mlp.c_proj` (Conv1D: weight `[in, out]`),
 *   `transformer.ln_f`; the output is tied to `wte`. Reading also accepts the names without the
 *   `transformer.` prefix (as `openai-community/gpt2` stores them).
 * - llama family: `model.embed_tokens`, per layer `model.layers.{i}.input_layernorm`,
 *   `self_attn.{q,k,v,o}_proj` (nn.Linear: weight `[out, in]`; q/k/v biases for qwen2),
 *   qwen3's `self_attn.{q,k}_norm`, `post_attention_layernorm`, `mlp.{gate,up,down}_proj`,
 *   `model.norm`, and `lm_head` unless tied.
 *
 * @since 0.1.0
 */
import type { ModelIoError } from "@crucible/core/io/IoError"
import * as Model from "@crucible/core/model/Model"
import * as TensorRef from "@crucible/core/tensor/TensorRef"
import { Effect } from "effect"
import * as Random from "../backend/Random.ts"
import type { HostTensor } from "../models/Layout.ts"
import type * as Params from "../models/Params.ts"
import { CONFIG_KEY, type LmConfig, toJson } from "./LmConfig.ts"
import { LmWeightsError } from "./LmError.ts"

/** Tensors by HF name, HF layout, float32. @category models */
export type LmWeights = Params.ParamSet

/**
 * How a tensor is stored: `linear` is nn.Linear's `[out, in]` (transposed to `[in, out]` on the
 * device), `plain` is used as stored (embeddings, norms, biases, gpt2's Conv1D `[in, out]`).
 */
export type SpecLayout = "linear" | "plain"

/** One tensor of a model: its HF name, HF shape, device layout and HF-style init. @category models */
export interface TensorSpec {
  readonly name: string
  readonly shape: ReadonlyArray<number>
  readonly layout: SpecLayout
  /** `normal` draws N(0, std); norms start at 1, biases at 0. */
  readonly init: { readonly kind: "normal"; readonly std: number } | { readonly kind: "ones" } | { readonly kind: "zeros" }
}

const normal = (std: number) => ({ kind: "normal" as const, std })
const ONES = { kind: "ones" as const }
const ZEROS = { kind: "zeros" as const }

const gpt2Specs = (c: LmConfig): Array<TensorSpec> => {
  const H = c.hiddenSize
  const std = c.initializerRange
  // GPT-2 scales the residual projections' init by 1/√(2·n_layer) (transformers' _init_weights).
  const projStd = std / Math.sqrt(2 * c.layers)
  const out: Array<TensorSpec> = [
    { name: "transformer.wte.weight", shape: [c.vocabSize, H], layout: "plain", init: normal(std) },
    { name: "transformer.wpe.weight", shape: [c.maxPositions, H], layout: "plain", init: normal(std) }
  ]
  for (let i = 0; i < c.layers; i++) {
    const p = `transformer.h.${i}`
    out.push(
      { name: `${p}.ln_1.weight`, shape: [H], layout: "plain", init: ONES },
      { name: `${p}.ln_1.bias`, shape: [H], layout: "plain", init: ZEROS },
      { name: `${p}.attn.c_attn.weight`, shape: [H, 3 * H], layout: "plain", init: normal(std) },
      { name: `${p}.attn.c_attn.bias`, shape: [3 * H], layout: "plain", init: ZEROS },
      { name: `${p}.attn.c_proj.weight`, shape: [H, H], layout: "plain", init: normal(projStd) },
      { name: `${p}.attn.c_proj.bias`, shape: [H], layout: "plain", init: ZEROS },
      { name: `${p}.ln_2.weight`, shape: [H], layout: "plain", init: ONES },
      { name: `${p}.ln_2.bias`, shape: [H], layout: "plain", init: ZEROS },
      { name: `${p}.mlp.c_fc.weight`, shape: [H, c.intermediateSize], layout: "plain", init: normal(std) },
      { name: `${p}.mlp.c_fc.bias`, shape: [c.intermediateSize], layout: "plain", init: ZEROS },
      { name: `${p}.mlp.c_proj.weight`, shape: [c.intermediateSize, H], layout: "plain", init: normal(projStd) },
      { name: `${p}.mlp.c_proj.bias`, shape: [H], layout: "plain", init: ZEROS }
    )
  }
  out.push(
    { name: "transformer.ln_f.weight", shape: [H], layout: "plain", init: ONES },
    { name: "transformer.ln_f.bias", shape: [H], layout: "plain", init: ZEROS }
  )
  return out
}

const llamaSpecs = (c: LmConfig): Array<TensorSpec> => {
  const H = c.hiddenSize
  const D = c.headDim
  const std = c.initializerRange
  const linear = (name: string, outF: number, inF: number, bias: boolean): Array<TensorSpec> => [
    { name: `${name}.weight`, shape: [outF, inF], layout: "linear", init: normal(std) },
    ...(bias ? [{ name: `${name}.bias`, shape: [outF], layout: "plain" as const, init: ZEROS }] : [])
  ]
  const out: Array<TensorSpec> = [{ name: "model.embed_tokens.weight", shape: [c.vocabSize, H], layout: "plain", init: normal(std) }]
  for (let i = 0; i < c.layers; i++) {
    const p = `model.layers.${i}`
    out.push(
      { name: `${p}.input_layernorm.weight`, shape: [H], layout: "plain", init: ONES },
      ...linear(`${p}.self_attn.q_proj`, c.heads * D, H, c.qkvBias),
      ...linear(`${p}.self_attn.k_proj`, c.kvHeads * D, H, c.qkvBias),
      ...linear(`${p}.self_attn.v_proj`, c.kvHeads * D, H, c.qkvBias),
      ...linear(`${p}.self_attn.o_proj`, H, c.heads * D, c.oBias),
      ...(c.qkNorm
        ? [
            { name: `${p}.self_attn.q_norm.weight`, shape: [D], layout: "plain" as const, init: ONES },
            { name: `${p}.self_attn.k_norm.weight`, shape: [D], layout: "plain" as const, init: ONES }
          ]
        : []),
      { name: `${p}.post_attention_layernorm.weight`, shape: [H], layout: "plain", init: ONES },
      ...linear(`${p}.mlp.gate_proj`, c.intermediateSize, H, c.mlpBias),
      ...linear(`${p}.mlp.up_proj`, c.intermediateSize, H, c.mlpBias),
      ...linear(`${p}.mlp.down_proj`, H, c.intermediateSize, c.mlpBias)
    )
  }
  out.push({ name: "model.norm.weight", shape: [H], layout: "plain", init: ONES })
  if (!c.tied) out.push({ name: "lm_head.weight", shape: [c.vocabSize, H], layout: "linear", init: normal(std) })
  return out
}

/**
 * Every tensor of the model `config` describes, in transformers' `state_dict` order.
 *
 * @category models
 */
export const specs = (config: LmConfig): ReadonlyArray<TensorSpec> => (config.family === "gpt2" ? gpt2Specs(config) : llamaSpecs(config))

/** Number of values of the model `config` describes. @category getters */
export const parameterCount = (config: LmConfig): number => specs(config).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0)

/**
 * HF-style initial weights: N(0, initializer_range) for embeddings and projections (gpt2's
 * residual projections scaled by 1/√(2·layers)), norms 1, biases 0; one random stream per tensor
 * name, so a tensor's values do not depend on the other tensors.
 *
 * @category constructors
 */
export const init = (config: LmConfig, seed: number): LmWeights =>
  new Map(
    specs(config).map((spec) => {
      const size = spec.shape.reduce((a, b) => a * b, 1)
      const data = new Float32Array(size)
      if (spec.init.kind === "ones") data.fill(1)
      else if (spec.init.kind === "normal") {
        const rng = Random.make(Random.derive(seed, "lm-init", spec.name))
        for (let i = 0; i < size; i++) data[i] = rng.normal() * spec.init.std
      }
      return [spec.name, { shape: spec.shape, data }] as const
    })
  )

const fmt = (shape: ReadonlyArray<number>): string => `[${shape.join(", ")}]`
const sameShape = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): boolean => a.length === b.length && a.every((d, i) => d === b[i])

// Buffers transformers keeps in some checkpoints that are not weights: gpt2's causal mask
// (`attn.bias`, `attn.masked_bias`) and old llama checkpoints' `rotary_emb.inv_freq`.
const isBuffer = (config: LmConfig, name: string): boolean =>
  config.family === "gpt2" ? /(^|\.)h\.\d+\.attn\.(bias|masked_bias)$/.test(name) : /\.rotary_emb\.inv_freq$/.test(name)

/** The stored name of `name` in `model`: itself, or gpt2's without the `transformer.` prefix. */
const storedName = (config: LmConfig, model: Model.Model, name: string): string | undefined => {
  if (model.tensors.has(name)) return name
  if (config.family === "gpt2" && name.startsWith("transformer.")) {
    const short = name.slice("transformer.".length)
    if (model.tensors.has(short)) return short
  }
  return undefined
}

/**
 * A model's weights for `config` as float32 (any float dtype is converted). A missing tensor, one
 * of another shape, or one the config has no place for is an `LmWeightsError` naming it; gpt2's
 * tensors may lack the `transformer.` prefix; a tied model's `lm_head.weight`, if stored, is
 * ignored (it is the embedding).
 *
 * @category constructors
 */
export const fromModel = (
  config: LmConfig,
  model: Model.Model
): Effect.Effect<LmWeights, LmWeightsError | ModelIoError | TensorRef.TensorError> =>
  Effect.gen(function* () {
    const out = new Map<string, HostTensor>()
    const used = new Set<string>()
    const all = specs(config)
    for (const spec of all) {
      const stored = storedName(config, model, spec.name)
      if (stored === undefined) {
        return yield* new LmWeightsError({
          tensor: spec.name,
          source: model.source,
          detail: `missing; the ${config.modelType} config expects ${fmt(spec.shape)} (is this the config of these weights?)`
        })
      }
      const ref = model.tensors.get(stored)!
      if (!sameShape(ref.shape, spec.shape)) {
        return yield* new LmWeightsError({ tensor: stored, source: model.source, detail: `has shape ${fmt(ref.shape)}; the config expects ${fmt(spec.shape)}` })
      }
      if (!["F64", "F32", "F16", "BF16"].includes(ref.dtype)) {
        return yield* new LmWeightsError({ tensor: stored, source: model.source, detail: `has dtype ${ref.dtype}; expected a float (F32, F16, BF16, F64)` })
      }
      used.add(stored)
      out.set(spec.name, { shape: spec.shape, data: yield* TensorRef.readFloat32(ref) })
    }
    for (const name of model.tensors.keys()) {
      if (used.has(name) || isBuffer(config, name) || (config.tied && name === "lm_head.weight")) continue
      return yield* new LmWeightsError({
        tensor: name,
        source: model.source,
        detail: `is not a tensor of this ${config.modelType} config (${config.layers} layers${config.tied ? ", tied output" : ""}); expected names like "${all[0]?.name ?? "?"}"`
      })
    }
    return out
  })

/**
 * A model over the weights (float32, HF names and layouts, `state_dict` order) whose metadata
 * holds the config (`CONFIG_KEY`) besides `metadata`.
 *
 * @category constructors
 */
export const toModel = (config: LmConfig, weights: LmWeights, source: string, metadata: Readonly<Record<string, string>> = {}): Model.Model =>
  Model.make(
    source,
    specs(config).flatMap((spec) => {
      const t = weights.get(spec.name)
      if (t === undefined) return []
      const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength).slice()
      return [TensorRef.fromBytes(spec.name, "F32", spec.shape, bytes)]
    }),
    { ...metadata, [CONFIG_KEY]: toJson(config) }
  )

/**
 * Checks that `weights` holds exactly the config's tensors with their shapes.
 *
 * @category validation
 */
export const validate = (config: LmConfig, weights: LmWeights, source?: string): Effect.Effect<LmWeights, LmWeightsError> =>
  Effect.gen(function* () {
    const fail = (tensor: string, detail: string) => new LmWeightsError({ tensor, detail, ...(source === undefined ? {} : { source }) })
    const all = specs(config)
    for (const spec of all) {
      const t = weights.get(spec.name)
      if (t === undefined) return yield* fail(spec.name, `missing; the config expects ${fmt(spec.shape)}`)
      if (!sameShape(t.shape, spec.shape) || t.data.length !== spec.shape.reduce((a, b) => a * b, 1)) {
        return yield* fail(spec.name, `has shape ${fmt(t.shape)} (${t.data.length} values); the config expects ${fmt(spec.shape)}`)
      }
    }
    if (weights.size !== all.length) {
      const known = new Set(all.map((s) => s.name))
      const extra = [...weights.keys()].find((n) => !known.has(n))
      if (extra !== undefined) return yield* fail(extra, "is not a tensor of this config")
    }
    return weights
  })
