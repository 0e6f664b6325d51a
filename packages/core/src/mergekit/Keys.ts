/**
 * The keys of mergekit's config models (`mergekit/config.py`: MergeConfiguration,
 * InputModelDefinition, OutputSliceDefinition, InputSliceDefinition) at each level, and the
 * messages for keys Crucible does not take: an unknown key gets a did-you-mean and the known keys.
 *
 * @since 0.1.0
 */
import { didYouMean } from "../internal/suggest.ts"

/** @category keys */
export const TOP = ["merge_method", "models", "slices", "base_model", "parameters", "dtype", "out_dtype", "tokenizer_source", "chat_template", "name", "modules", "tokenizer"]
/** @category keys */
export const MODEL = ["model", "parameters"]
/** @category keys */
export const SLICE = ["sources", "base_model", "parameters", "residual_weight"]
/** @category keys */
export const SOURCE = ["model", "layer_range", "parameters"]
/** @category keys */
export const TOKENIZER = ["source", "tokens", "pad_to_multiple_of"]
/** @category keys */
export const TOKEN = ["source", "force"]
/** @category keys */
export const TOKEN_SOURCE = ["kind", "model", "token_id", "token"]

/**
 * The chat template names mergekit ships (its `_data/chat_templates/*.jinja`): the values of
 * `chat_template` that are not Jinja text. The texts are `@crucible/strategies`' `ChatTemplates.named`
 * (a test keeps the two lists equal); the compiler only needs the names, to refuse a misspelt one.
 *
 * @category keys
 */
export const TEMPLATE_NAMES = ["alpaca", "chatml", "exaone", "llama3", "mistral"]

/** mergekit keys Crucible knows and refuses, with what to do instead. @category keys */
export const unsupported: Readonly<Record<string, string>> = {
  modules: "modules: (per-module configs of multimodal models) is not supported; use models: or slices:",
  residual_weight: "residual_weight is not supported"
}

/** The problems of a map's keys against the known ones: `[key, message]` for each. @category keys */
export const check = (raw: Readonly<Record<string, unknown>>, known: ReadonlyArray<string>): Array<readonly [string, string]> =>
  Object.keys(raw).flatMap((key): Array<readonly [string, string]> => {
    if (unsupported[key] !== undefined) return [[key, unsupported[key]!]]
    if (known.includes(key)) return []
    return [[key, `unknown mergekit key "${key}"${didYouMean(key, known)}; known here: ${known.filter((k) => unsupported[k] === undefined).join(", ")}`]]
  })
