/**
 * What a Hugging Face `config.json` says about a transformer's tensors: where its layers live
 * (`model.layers.{i}.` or `transformer.h.{i}.`), how many there are, and which tensors sit outside
 * the layers (embeddings, final norm, lm_head). The names follow transformers and mergekit's
 * `mergekit/_data/architectures/*.json` for the common causal-LM families.
 *
 * Tied embeddings: with `tie_word_embeddings` true the checkpoint holds no `lm_head.weight` (the
 * output projection reuses the input embedding), so `lmHead` is undefined and `nonLayer` omits it.
 *
 * @since 0.1.0
 */
import { Effect, Result, Schema } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"

/** A transformer family's tensor layout, as read from its config. @category models */
export interface Architecture {
  /** The `model_type` (llama, mistral, qwen2, qwen3, gemma, gemma2, phi3, gpt2, mixtral). */
  readonly family: string
  /** The prefix before a layer's index: `"model.layers."` or `"transformer.h."`. */
  readonly layerPrefix: string
  /** `num_hidden_layers` (`n_layer` for gpt2). */
  readonly layerCount: number
  /** `tie_word_embeddings`: the output projection reuses the input embedding. */
  readonly tied: boolean
  /** The input embedding tensor. */
  readonly embedding: string
  /** The output projection tensor; undefined when tied (the checkpoint has none). */
  readonly lmHead?: string | undefined
  /** The tensor names outside the layers, embeddings first, lm_head last (when not tied). */
  readonly nonLayer: ReadonlyArray<string>
}

/** The config cannot be read or does not describe a known family. @category errors */
export class ArchitectureError extends Schema.TaggedError<ArchitectureError>()("ArchitectureError", {
  file: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `${this.file}: ${this.detail}`
  }
}

interface Family {
  readonly layerPrefix: string
  readonly layerCountKey: string
  /** transformers' default for `tie_word_embeddings` when the config omits it. */
  readonly tiedByDefault: boolean
  readonly pre: ReadonlyArray<string>
  readonly post: ReadonlyArray<string>
}

const llamaLike = (tiedByDefault: boolean): Family => ({
  layerPrefix: "model.layers.",
  layerCountKey: "num_hidden_layers",
  tiedByDefault,
  pre: ["model.embed_tokens.weight"],
  post: ["model.norm.weight"]
})

// The lm_head is added from `tied`, so it is not listed here.
const FAMILIES: Readonly<Record<string, Family>> = {
  llama: llamaLike(false),
  mistral: llamaLike(false),
  mixtral: llamaLike(false),
  qwen2: llamaLike(false),
  qwen3: llamaLike(false),
  phi3: llamaLike(false),
  gemma: llamaLike(true),
  gemma2: llamaLike(true),
  gpt2: {
    layerPrefix: "transformer.h.",
    layerCountKey: "n_layer",
    tiedByDefault: true,
    pre: ["transformer.wte.weight", "transformer.wpe.weight"],
    post: ["transformer.ln_f.weight", "transformer.ln_f.bias"]
  }
}

// `architectures[0]` → family, for configs without `model_type`.
const BY_CLASS: Readonly<Record<string, string>> = {
  LlamaForCausalLM: "llama",
  MistralForCausalLM: "mistral",
  MixtralForCausalLM: "mixtral",
  Qwen2ForCausalLM: "qwen2",
  Qwen3ForCausalLM: "qwen3",
  Phi3ForCausalLM: "phi3",
  GemmaForCausalLM: "gemma",
  Gemma2ForCausalLM: "gemma2",
  GPT2LMHeadModel: "gpt2"
}

const LM_HEAD = "lm_head.weight"

/** The families `fromConfig` knows. @category models */
export const families: ReadonlyArray<string> = Object.keys(FAMILIES)

const familyName = (config: Readonly<Record<string, unknown>>): string | undefined => {
  if (typeof config["model_type"] === "string" && config["model_type"] in FAMILIES) return config["model_type"]
  const classes = config["architectures"]
  const first = Array.isArray(classes) && typeof classes[0] === "string" ? classes[0] : undefined
  return first === undefined ? undefined : BY_CLASS[first]
}

/**
 * The architecture a parsed `config.json` describes (`file` only names it in errors).
 *
 * @category constructors
 */
export const fromConfig = (
  config: Readonly<Record<string, unknown>>,
  file = "config.json"
): Result.Result<Architecture, ArchitectureError> => {
  const name = familyName(config)
  if (name === undefined) {
    const said = JSON.stringify(config["model_type"] ?? config["architectures"] ?? null)
    return Result.fail(new ArchitectureError({ file, detail: `unknown architecture ${said}; known model_type values: ${families.join(", ")}` }))
  }
  const family = FAMILIES[name]!
  const count = config[family.layerCountKey]
  if (typeof count !== "number" || !Number.isSafeInteger(count) || count < 0) {
    return Result.fail(new ArchitectureError({ file, detail: `${name} config needs "${family.layerCountKey}" as a whole number ≥ 0, got ${JSON.stringify(count ?? null)}` }))
  }
  const tiedValue = config["tie_word_embeddings"]
  const tied = typeof tiedValue === "boolean" ? tiedValue : family.tiedByDefault
  return Result.succeed({
    family: name,
    layerPrefix: family.layerPrefix,
    layerCount: count,
    tied,
    embedding: family.pre[0]!,
    lmHead: tied ? undefined : LM_HEAD,
    nonLayer: [...family.pre, ...family.post, ...(tied ? [] : [LM_HEAD])]
  })
}

/**
 * `folder/config.json`, parsed; a missing, unreadable or non-object file is an `ArchitectureError`
 * naming it.
 *
 * @category constructors
 */
export const readConfig = Effect.fn("Architecture.readConfig")(function*(folder: string) {
  const file = path.join(folder, "config.json")
  const text = yield* Effect.tryPromise({
    try: () => fs.readFile(file, "utf8"),
    catch: (cause) => new ArchitectureError({ file, detail: `cannot read: ${cause instanceof Error ? cause.message : String(cause)}` })
  })
  const parsed = yield* Effect.try({
    try: () => JSON.parse(text) as unknown,
    catch: (cause) => new ArchitectureError({ file, detail: `not valid JSON: ${cause instanceof Error ? cause.message : String(cause)}` })
  })
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return yield* new ArchitectureError({ file, detail: "expected a JSON object" })
  }
  return parsed as Record<string, unknown>
})

/**
 * The layer index of `tensor` (`model.layers.7.mlp.up_proj.weight` → 7), or undefined for a
 * tensor outside the layers.
 *
 * @category layers
 */
export const layerOf = (arch: Pick<Architecture, "layerPrefix">, tensor: string): number | undefined => {
  if (!tensor.startsWith(arch.layerPrefix)) return undefined
  const match = /^(\d+)\./.exec(tensor.slice(arch.layerPrefix.length))
  return match === null ? undefined : Number(match[1])
}

/**
 * `tensor` moved to layer `layer` (`model.layers.7.mlp…` → `model.layers.2.mlp…`); a tensor
 * outside the layers is returned unchanged.
 *
 * @category layers
 */
export const renumber = (arch: Pick<Architecture, "layerPrefix">, tensor: string, layer: number): string => {
  const old = layerOf(arch, tensor)
  if (old === undefined) return tensor
  return `${arch.layerPrefix}${layer}${tensor.slice(arch.layerPrefix.length + String(old).length)}`
}

// Where layers live in the common checkpoints, most common first.
const COMMON_PREFIXES: ReadonlyArray<string> = [
  "model.layers.",
  "transformer.h.",
  "model.decoder.layers.",
  "gpt_neox.layers.",
  "transformer.blocks.",
  "layers.",
  "h."
]

/**
 * The layer prefix and count of a checkpoint with no `config.json`, from its tensor names: the
 * first common prefix (`model.layers.`, `transformer.h.`, …) that any name uses, and one more than
 * the highest index under it; undefined when no name sits under a common prefix.
 *
 * @category constructors
 */
export const fromTensorNames = (names: Iterable<string>): { layerPrefix: string; layerCount: number } | undefined => {
  const highest = new Map<string, number>()
  for (const name of names) {
    for (const layerPrefix of COMMON_PREFIXES) {
      const index = layerOf({ layerPrefix }, name)
      if (index !== undefined) {
        highest.set(layerPrefix, Math.max(highest.get(layerPrefix) ?? -1, index))
        break
      }
    }
  }
  for (const layerPrefix of COMMON_PREFIXES) {
    const top = highest.get(layerPrefix)
    if (top !== undefined) return { layerPrefix, layerCount: top + 1 }
  }
  return undefined
}

// Input embeddings across families: llama-likes' embed_tokens, gpt2's wte/wpe, gpt-neox's
// embed_in, bloom/falcon's word_embeddings, OPT/whisper's embed_positions.
const INPUT_EMBEDDING = /(^|\.)(embed_tokens|embed_in|wte|wpe|word_embeddings|embed_positions)\.(weight|bias)$/

/**
 * Whether a tensor outside the layers is an input embedding (it sits before the layers), as
 * opposed to what follows them (final norm, lm_head): mergekit's "pre" and "post" weights.
 *
 * @category layers
 */
export const isInputEmbedding = (tensor: string): boolean => INPUT_EMBEDDING.test(tensor)
