// Tiny LLaMA-shaped Hugging Face folders with small, different vocabularies, for the tokenizer tests.
import { DType, Model, Safetensors, TensorRef } from "@crucible/core"
import { Effect } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"

export const HIDDEN = 3

export interface TinyTokenizer {
  /** The model vocabulary, by id. */
  readonly tokens: ReadonlyArray<string>
  /** Added tokens after the vocabulary: [content, special]. */
  readonly added: ReadonlyArray<readonly [string, boolean]>
  /** config.json's vocab_size = the embedding's rows. */
  readonly vocabSize: number
  readonly chatTemplate?: string
}

/** Row r of a model's embedding (lm_head: offset by 0.5), distinct per model `seed`. */
export const rowValue = (seed: number, r: number, j: number, lmHead: boolean): number => seed * 100 + r + j / 8 + (lmHead ? 0.5 : 0)

/** Writes `dir` as a tiny llama folder: config.json, tokenizer files, generation_config.json, model.safetensors. */
export const writeFolder = async (dir: string, seed: number, tok: TinyTokenizer): Promise<void> => {
  await fs.mkdir(dir, { recursive: true })
  const n = tok.tokens.length
  const tokenizerJson = {
    version: "1.0",
    added_tokens: tok.added.map(([content, special], i) => ({ id: n + i, content, single_word: false, lstrip: false, rstrip: false, normalized: !special, special })),
    normalizer: null,
    pre_tokenizer: null,
    model: { type: "BPE", dropout: null, unk_token: "<unk>", vocab: Object.fromEntries(tok.tokens.map((t, i) => [t, i])), merges: [] }
  }
  const config = { architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: HIDDEN, num_hidden_layers: 1, vocab_size: tok.vocabSize, tie_word_embeddings: false }
  const tokenizerConfig = { model_max_length: 2048, bos_token: "<s>", eos_token: "</s>", tokenizer_class: "LlamaTokenizer", ...(tok.chatTemplate === undefined ? {} : { chat_template: tok.chatTemplate }) }
  await fs.writeFile(path.join(dir, "tokenizer.json"), JSON.stringify(tokenizerJson, null, 2))
  await fs.writeFile(path.join(dir, "tokenizer_config.json"), JSON.stringify(tokenizerConfig, null, 2))
  await fs.writeFile(path.join(dir, "special_tokens_map.json"), JSON.stringify({ bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>" }))
  await fs.writeFile(path.join(dir, "config.json"), JSON.stringify(config, null, 2))
  await fs.writeFile(path.join(dir, "generation_config.json"), JSON.stringify({ bos_token_id: 1, eos_token_id: 2, seed }))
  const matrix = (lmHead: boolean) =>
    Float32Array.from({ length: tok.vocabSize * HIDDEN }, (_, i) => rowValue(seed, Math.floor(i / HIDDEN), i % HIDDEN, lmHead))
  const tensor = (name: string, values: Float32Array, shape: ReadonlyArray<number>) =>
    TensorRef.fromBytes(name, "F32", shape, DType.fromNumbers(values, "F32"))
  const model = Model.make(dir, [
    tensor("model.embed_tokens.weight", matrix(false), [tok.vocabSize, HIDDEN]),
    tensor("model.layers.0.mlp.up_proj.weight", Float32Array.from({ length: HIDDEN * HIDDEN }, (_, i) => seed + i), [HIDDEN, HIDDEN]),
    tensor("model.norm.weight", Float32Array.from({ length: HIDDEN }, () => seed), [HIDDEN]),
    tensor("lm_head.weight", matrix(true), [tok.vocabSize, HIDDEN])
  ])
  await Effect.runPromise(Safetensors.write(path.join(dir, "model.safetensors"), model))
}

/** The folder's model, lazily, with the provenance `load` of an HF folder gives. */
export const loadFolder = (dir: string) =>
  Safetensors.read(path.join(dir, "model.safetensors")).pipe(Effect.map((m): Model.Model => ({ ...m, provenance: Model.fromFolder(dir) })))

/** A: the base. B: reordered, with x, y, w and two chat tokens. C: z, w and two unused added tokens past vocab_size. */
export const A: TinyTokenizer = { tokens: ["<unk>", "<s>", "</s>", "a", "b", "c", "d", "e"], added: [], vocabSize: 8 }
export const B: TinyTokenizer = {
  tokens: ["<unk>", "<s>", "</s>", "a", "c", "x", "y", "b", "w"],
  added: [["<|im_start|>", true], ["<|im_end|>", true]],
  vocabSize: 11,
  chatTemplate: "{% for m in messages %}{{ m['content'] }}{% endfor %}"
}
export const C: TinyTokenizer = { tokens: ["<unk>", "<s>", "</s>", "a", "b", "z", "w"], added: [["<UNUSED_0>", false], ["<UNUSED_1>", false]], vocabSize: 7 }

/** A tokenizer's tokens with their ids (added ones included). */
export const idsOf = (tok: TinyTokenizer): ReadonlyMap<string, number> =>
  new Map([...tok.tokens, ...tok.added.map(([t]) => t)].map((t, i) => [t, i]))
