/**
 * A Hugging Face `config.json` of a decoder-only language model, decoded into what the
 * transformer needs. Two families:
 * - `gpt2` (model_type gpt2): LayerNorm, learned positions, GELU (tanh approximation), Conv1D
 *   weights, tied output;
 * - `llama` (model_type llama, mistral, qwen2, qwen3): RMSNorm, RoPE (with `rope_scaling`
 *   `linear` or `llama3`), grouped-query attention, SiLU-gated MLP; qwen2's q/k/v biases and
 *   qwen3's per-head q/k RMSNorm as transformers' classes have them.
 *
 * Defaults are transformers' for fields a config leaves out (a `save_pretrained` config holds
 * them all). Anything these classes would compute differently from what Crucible implements
 * (another model_type, rope type or activation, qwen's per-layer sliding windows) is an
 * `LmConfigError` naming the file and the field rather than a silently different model.
 *
 * @since 0.1.0
 */
import type * as Model from "@crucible/core/model/Model"
import { Effect } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { LmConfigError } from "./LmError.ts"

/** How RoPE's inverse frequencies are rescaled (transformers' `rope_scaling`). @category models */
export type RopeScaling =
  | { readonly type: "none" }
  | { readonly type: "linear"; readonly factor: number }
  | {
      readonly type: "llama3"
      readonly factor: number
      readonly lowFreqFactor: number
      readonly highFreqFactor: number
      readonly originalMaxPositions: number
    }

/** @category models */
export interface LmConfig {
  readonly family: "gpt2" | "llama"
  /** `config.model_type`. */
  readonly modelType: string
  readonly vocabSize: number
  readonly hiddenSize: number
  readonly layers: number
  readonly heads: number
  readonly kvHeads: number
  readonly headDim: number
  readonly intermediateSize: number
  readonly maxPositions: number
  readonly normEps: number
  /** Output projection shares the input embedding (gpt2: always). */
  readonly tied: boolean
  /** gpt2: `gelu_new` (tanh approximation); llama family: `silu` (gated). */
  readonly activation: "gelu_new" | "silu"
  /** RoPE base (llama family). */
  readonly ropeTheta: number
  readonly ropeScaling: RopeScaling
  /** q/k/v projections have biases (qwen2 always; llama/qwen3 with `attention_bias`; gpt2 always). */
  readonly qkvBias: boolean
  /** The output projection has a bias (gpt2; llama/qwen3 with `attention_bias`). */
  readonly oBias: boolean
  /** The MLP projections have biases (gpt2; llama with `mlp_bias`). */
  readonly mlpBias: boolean
  /** qwen3: RMSNorm over each head of q and k before RoPE (`self_attn.{q,k}_norm.weight`). */
  readonly qkNorm: boolean
  /** Attention sees at most this many tokens back, itself included (mistral's `sliding_window`). */
  readonly slidingWindow: number | undefined
  /** Standard deviation of the normal init (`initializer_range`). */
  readonly initializerRange: number
  /** The config.json object as read. */
  readonly raw: Readonly<Record<string, unknown>>
}

/** Model metadata key holding the config.json text of a model Crucible made. @category constants */
export const CONFIG_KEY = "crucible.lm.config"

const LLAMA_TYPES = ["llama", "mistral", "qwen2", "qwen3"]

/**
 * A config object as an `LmConfig`; `source` names it in errors.
 *
 * @category constructors
 */
export const decode = (raw: unknown, source: string): Effect.Effect<LmConfig, LmConfigError> =>
  Effect.suspend(() => {
    try {
      return Effect.succeed(decodeSync(raw, source))
    } catch (e) {
      if (e instanceof LmConfigError) return Effect.fail(e)
      throw e
    }
  })

const decodeSync = (raw: unknown, source: string): LmConfig => {
  const fail = (field: string, detail: string): never => {
    throw new LmConfigError({ source, field, detail })
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return fail("", "expected a JSON object (a Hugging Face config.json)")
  const c = raw as Readonly<Record<string, unknown>>
  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback
    if (v === undefined) return fail(key, "missing; a positive integer is required")
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) return fail(key, `expected a positive integer, got ${JSON.stringify(v)}`)
    return v
  }
  const num = (key: string, fallback: number): number => {
    const v = c[key] ?? fallback
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) return fail(key, `expected a positive number, got ${JSON.stringify(v)}`)
    return v
  }
  const bool = (key: string, fallback: boolean): boolean => {
    const v = c[key] ?? fallback
    if (typeof v !== "boolean") return fail(key, `expected true or false, got ${JSON.stringify(v)}`)
    return v
  }
  const modelType = c["model_type"]
  if (typeof modelType !== "string") return fail("model_type", "missing; expected one of gpt2, llama, mistral, qwen2, qwen3")

  if (modelType === "gpt2") {
    const hiddenSize = int("n_embd", 768)
    const heads = int("n_head", 12)
    if (hiddenSize % heads !== 0) fail("n_head", `n_embd ${hiddenSize} is not divisible by n_head ${heads}`)
    const act = c["activation_function"] ?? "gelu_new"
    if (act !== "gelu_new" && act !== "gelu_pytorch_tanh") fail("activation_function", `"${String(act)}" is not supported; gpt2 runs gelu_new (the tanh approximation)`)
    if (c["scale_attn_by_inverse_layer_idx"] === true) fail("scale_attn_by_inverse_layer_idx", "true is not supported (set it to false)")
    if (c["tie_word_embeddings"] === false) fail("tie_word_embeddings", "false is not supported for gpt2 (its output is the token embedding)")
    if (c["scale_attn_weights"] === false) fail("scale_attn_weights", "false is not supported (gpt2 scales attention by 1/√head_dim)")
    const inner = c["n_inner"]
    return {
      family: "gpt2",
      modelType,
      vocabSize: int("vocab_size", 50257),
      hiddenSize,
      layers: int("n_layer", 12),
      heads,
      kvHeads: heads,
      headDim: hiddenSize / heads,
      intermediateSize: inner === null || inner === undefined ? 4 * hiddenSize : int("n_inner"),
      maxPositions: int("n_positions", 1024),
      normEps: num("layer_norm_epsilon", 1e-5),
      tied: true,
      activation: "gelu_new",
      ropeTheta: 10000,
      ropeScaling: { type: "none" },
      qkvBias: true,
      oBias: true,
      mlpBias: true,
      qkNorm: false,
      slidingWindow: undefined,
      initializerRange: num("initializer_range", 0.02),
      raw: c
    }
  }

  if (!LLAMA_TYPES.includes(modelType)) return fail("model_type", `"${modelType}" is not supported; expected one of gpt2, ${LLAMA_TYPES.join(", ")}`)
  const hiddenSize = int("hidden_size")
  const heads = int("num_attention_heads")
  const kvHeads = c["num_key_value_heads"] === null ? heads : int("num_key_value_heads", heads)
  if (heads % kvHeads !== 0) fail("num_key_value_heads", `num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`)
  // qwen3's class defaults head_dim to 128; the others to hidden_size / heads.
  const headDimDefault = modelType === "qwen3" ? 128 : hiddenSize / heads
  const headDim = c["head_dim"] === null ? hiddenSize / heads : int("head_dim", Number.isInteger(headDimDefault) ? headDimDefault : undefined)
  if (headDim % 2 !== 0) fail("head_dim", `${headDim} is odd; RoPE rotates pairs of dimensions`)
  const act = c["hidden_act"] ?? "silu"
  if (act !== "silu") fail("hidden_act", `"${String(act)}" is not supported; the llama family runs silu`)
  const attentionBias = bool("attention_bias", false)
  // transformers' Qwen2 gives q, k, v a bias whatever the config says, and o none; Mistral has none.
  const qkvBias = modelType === "qwen2" ? true : modelType === "mistral" ? false : attentionBias
  const oBias = modelType === "qwen2" || modelType === "mistral" ? false : attentionBias
  const mlpBias = modelType === "llama" ? bool("mlp_bias", false) : false
  let slidingWindow: number | undefined
  if (modelType === "mistral") {
    slidingWindow = c["sliding_window"] === null || c["sliding_window"] === undefined ? undefined : int("sliding_window")
  } else if ((modelType === "qwen2" || modelType === "qwen3") && c["use_sliding_window"] === true) {
    fail("use_sliding_window", "true is not supported (qwen's per-layer sliding windows); set it to false")
  }
  // transformers ≥ 5 moves rope_theta and the scaling into `rope_parameters`.
  const ropeParams = c["rope_parameters"]
  const ropeTheta =
    typeof ropeParams === "object" && ropeParams !== null && typeof (ropeParams as Record<string, unknown>)["rope_theta"] === "number"
      ? ((ropeParams as Record<string, unknown>)["rope_theta"] as number)
      : num("rope_theta", 10000)
  const ropeScaling = decodeRopeScaling(c["rope_scaling"] ?? ropeParams, typeof c["rope_scaling"] === "object" && c["rope_scaling"] !== null ? "rope_scaling" : "rope_parameters", fail)
  return {
    family: "llama",
    modelType,
    vocabSize: int("vocab_size"),
    hiddenSize,
    layers: int("num_hidden_layers"),
    heads,
    kvHeads,
    headDim,
    intermediateSize: int("intermediate_size"),
    maxPositions: int("max_position_embeddings", 2048),
    normEps: num("rms_norm_eps", 1e-6),
    tied: bool("tie_word_embeddings", false),
    activation: "silu",
    ropeTheta,
    ropeScaling,
    qkvBias,
    oBias,
    mlpBias,
    qkNorm: modelType === "qwen3",
    slidingWindow,
    initializerRange: num("initializer_range", 0.02),
    raw: c
  }
}

const decodeRopeScaling = (value: unknown, key: string, fail: (field: string, detail: string) => never): RopeScaling => {
  if (value === null || value === undefined) return { type: "none" }
  if (typeof value !== "object" || Array.isArray(value)) return fail(key, `expected an object or null, got ${JSON.stringify(value)}`)
  const s = value as Record<string, unknown>
  const type = s["rope_type"] ?? s["type"] ?? "default"
  const typeKey = `${key}.${"rope_type" in s ? "rope_type" : "type"}`
  const positive = (field: string, fallback?: number): number => {
    const v = s[field] ?? fallback
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) return fail(`${key}.${field}`, `expected a positive number, got ${JSON.stringify(v)}`)
    return v
  }
  switch (type) {
    case "default":
      return { type: "none" }
    case "linear":
      return { type: "linear", factor: positive("factor") }
    case "llama3": {
      const scaling = {
        type: "llama3" as const,
        factor: positive("factor"),
        lowFreqFactor: positive("low_freq_factor"),
        highFreqFactor: positive("high_freq_factor"),
        originalMaxPositions: positive("original_max_position_embeddings")
      }
      if (scaling.highFreqFactor <= scaling.lowFreqFactor) fail(`${key}.high_freq_factor`, "must exceed low_freq_factor")
      return scaling
    }
    default:
      return fail(typeKey, `"${String(type)}" is not supported; use linear, llama3, default or null`)
  }
}

const readFile = (file: string): Effect.Effect<unknown, LmConfigError> =>
  Effect.gen(function* () {
    const text = yield* Effect.tryPromise({
      try: () => fs.readFile(file, "utf8"),
      catch: (cause) => new LmConfigError({ source: file, field: "", detail: `cannot read: ${cause instanceof Error ? cause.message : String(cause)}` })
    })
    return yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: (cause) => new LmConfigError({ source: file, field: "", detail: `not valid JSON: ${cause instanceof Error ? cause.message : String(cause)}` })
    })
  })

/**
 * Reads and decodes a config.json; a folder means `folder/config.json`.
 *
 * @category constructors
 */
export const read = Effect.fn("LmConfig.read")(function* (fileOrFolder: string) {
  const stat = yield* Effect.promise(() => fs.stat(fileOrFolder).catch(() => undefined))
  const file = stat?.isDirectory() === true ? path.join(fileOrFolder, "config.json") : fileOrFolder
  return yield* decode(yield* readFile(file), file)
})

/**
 * The config of a model: `param` when given (a file or folder path, resolved by `resolvePath`,
 * or an inline object); else the model's metadata `CONFIG_KEY`; else the config.json of its
 * provenance's donor folder; else an `LmConfigError` saying to give `config:`.
 *
 * @category constructors
 */
export const configOf = (
  model: Model.Model | undefined,
  param: string | Record<string, unknown> | undefined,
  resolvePath: (p: string) => string
): Effect.Effect<LmConfig, LmConfigError> => {
  if (typeof param === "string") return read(resolvePath(param))
  if (param !== undefined) return decode(param, "config (inline)")
  const text = model?.metadata[CONFIG_KEY]
  if (text !== undefined) {
    const source = `${model!.source} (metadata ${CONFIG_KEY})`
    return Effect.flatMap(
      Effect.try({
        try: () => JSON.parse(text) as unknown,
        catch: (cause) => new LmConfigError({ source, field: "", detail: `not valid JSON: ${cause instanceof Error ? cause.message : String(cause)}` })
      }),
      (raw) => decode(raw, source)
    )
  }
  const donor = model?.provenance?.donor
  if (donor !== undefined) return read(path.join(donor, "config.json"))
  return Effect.fail(
    new LmConfigError({
      source: model?.source ?? "model",
      field: "config",
      detail: "the model carries no config.json (no metadata, no Hugging Face folder); give `config:` (a folder with config.json, a config.json file, or an inline object)"
    })
  )
}

/** The config as config.json text (what `CONFIG_KEY` holds). @category getters */
export const toJson = (config: LmConfig): string => JSON.stringify(config.raw, null, 2)
