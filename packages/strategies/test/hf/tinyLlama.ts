// Tiny LLaMA-shaped Hugging Face folders for tests: a real config.json with llama fields, small
// tokenizer files (tokenizer.json, tokenizer_config.json, special_tokens_map.json),
// generation_config.json, and model.safetensors holding the tensors transformers' LlamaForCausalLM
// names, seeded so every machine writes the same bytes. Reusable by any test that needs a model
// folder (`writeTinyLlama(dir, { layers, hidden, vocab, seed, dtype })`).
import { DType, Formats, Model, Safetensors, TensorRef } from "@crucible/core"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"

/** Options of {@link writeTinyLlama}. */
export interface TinyLlama {
  readonly layers?: number
  readonly hidden?: number
  readonly vocab?: number
  readonly seed?: number
  /** The weights' dtype (F32, F16 or BF16). */
  readonly dtype?: "F32" | "F16" | "BF16"
  /** tie_word_embeddings: no lm_head.weight. */
  readonly tied?: boolean
}

/** Each tensor's shape and values as stored (float64, after the dtype's rounding), by name. */
export type Values = Map<string, { readonly shape: ReadonlyArray<number>; readonly values: Float64Array }>

/** mulberry32: a small seeded PRNG. */
const rng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** The tensor names and shapes of a LlamaForCausalLM with these sizes, in transformers' order. */
export const llamaShapes = (o: { layers: number; hidden: number; vocab: number; tied: boolean }): Array<[string, Array<number>]> => {
  const h = o.hidden
  const inter = 2 * h
  const shapes: Array<[string, Array<number>]> = [["model.embed_tokens.weight", [o.vocab, h]]]
  for (let i = 0; i < o.layers; i++) {
    const p = `model.layers.${i}.`
    shapes.push(
      [`${p}self_attn.q_proj.weight`, [h, h]], [`${p}self_attn.k_proj.weight`, [h, h]],
      [`${p}self_attn.v_proj.weight`, [h, h]], [`${p}self_attn.o_proj.weight`, [h, h]],
      [`${p}mlp.gate_proj.weight`, [inter, h]], [`${p}mlp.up_proj.weight`, [inter, h]], [`${p}mlp.down_proj.weight`, [h, inter]],
      [`${p}input_layernorm.weight`, [h]], [`${p}post_attention_layernorm.weight`, [h]]
    )
  }
  shapes.push(["model.norm.weight", [h]])
  if (!o.tied) shapes.push(["lm_head.weight", [o.vocab, h]])
  return shapes
}

const TORCH_DTYPE = { F32: "float32", F16: "float16", BF16: "bfloat16" } as const

/** Writes a tiny LLaMA folder at `dir`; returns the tensors' values as stored. */
export const writeTinyLlama = async (dir: string, options: TinyLlama = {}): Promise<Values> => {
  const o = { layers: 2, hidden: 8, vocab: 32, seed: 0, dtype: "F32" as const, tied: false, ...options }
  fs.mkdirSync(dir, { recursive: true })
  const json = (name: string, value: unknown) => fs.writeFileSync(path.join(dir, name), `${JSON.stringify(value, null, 2)}\n`)
  json("config.json", {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: o.hidden,
    intermediate_size: 2 * o.hidden,
    num_hidden_layers: o.layers,
    num_attention_heads: 2,
    num_key_value_heads: 2,
    vocab_size: o.vocab,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: o.tied,
    torch_dtype: TORCH_DTYPE[o.dtype],
    bos_token_id: 1,
    eos_token_id: 2
  })
  const vocab = Object.fromEntries(Array.from({ length: o.vocab }, (_, i) => [i === 0 ? "<unk>" : i === 1 ? "<s>" : i === 2 ? "</s>" : `t${i}`, i]))
  json("tokenizer.json", {
    version: "1.0",
    added_tokens: [0, 1, 2].map((id) => ({ id, content: ["<unk>", "<s>", "</s>"][id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    model: { type: "BPE", vocab, merges: [], unk_token: "<unk>" }
  })
  json("tokenizer_config.json", { bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>", model_max_length: 64, tokenizer_class: "LlamaTokenizerFast", seed: o.seed })
  json("special_tokens_map.json", { bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>" })
  json("generation_config.json", { bos_token_id: 1, eos_token_id: 2, do_sample: false })
  const next = rng(o.seed)
  const values: Values = new Map()
  const tensors = llamaShapes(o).map(([name, shape]) => {
    const data = Float64Array.from({ length: TensorRef.numel(shape) }, () => (next() + next() + next() - 1.5) * 2)
    const bytes = DType.fromNumbers(data, o.dtype)
    values.set(name, { shape, values: DType.toFloat64(bytes, o.dtype) })
    return TensorRef.fromBytes(name, o.dtype, shape, bytes)
  })
  const file = path.join(dir, "model.safetensors")
  await Effect.runPromise(Safetensors.write(file, Model.make(file, tensors, { format: "pt" })))
  return values
}

/** The tensors of the model at `file` (any format `load` reads): shape, dtype and values as float64. */
export const readValues = (file: string): Promise<Map<string, { readonly shape: ReadonlyArray<number>; readonly dtype: DType.DType; readonly values: Float64Array }>> =>
  Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const model = yield* Formats.readModel(file)
    const out = new Map<string, { shape: ReadonlyArray<number>; dtype: DType.DType; values: Float64Array }>()
    for (const t of model.tensors.values()) out.set(t.name, { shape: t.shape, dtype: t.dtype, values: DType.toFloat64(yield* t.read(undefined), t.dtype) })
    return out
  })))
