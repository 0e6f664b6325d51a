// A tiny LLaMA-shaped model folder for the LM stage tests: the demo's BPE tokenizer (trained on
// Brown, committed with the lm-merge example) and a config.json small enough that a step takes
// milliseconds; stage contexts in fresh temporary folders; outputs as safetensors bytes.
import { Safetensors } from "@crucible/core"
import type { Model } from "@crucible/core"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))
/** The folder holding the demo tokenizer (tokenizer.json, tokenizer_config.json). */
export const TOKENIZER_DIR = path.resolve(here, "../../../../../examples/lm-merge/tiny-llama")

/** The vocabulary size of the demo tokenizer (one more than its largest id). */
export const tokenizerVocab = (): number => {
  const json = JSON.parse(fs.readFileSync(path.join(TOKENIZER_DIR, "tokenizer.json"), "utf8")) as { model: { vocab: Record<string, number> }; added_tokens?: Array<{ id: number }> }
  return Math.max(...Object.values(json.model.vocab), ...(json.added_tokens ?? []).map((t) => t.id)) + 1
}

/** A llama config.json object: 2 layers, hidden 32, 4 heads over 2 KV heads, the tokenizer's vocabulary. */
export const tinyConfig = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: tokenizerVocab(),
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 64,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true,
  initializer_range: 0.02,
  torch_dtype: "float32",
  ...overrides
})

/** A fresh temporary folder. */
export const tempDir = (prefix: string): string => fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`))

/** A model folder in `dir`: config.json (with `overrides`) and the demo tokenizer files. */
export const writeModelFolder = (dir: string, overrides: Record<string, unknown> = {}): string => {
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(tinyConfig(overrides), null, 2))
  for (const f of fs.readdirSync(TOKENIZER_DIR)) if (f.startsWith("tokenizer") && f.endsWith(".json")) fs.copyFileSync(path.join(TOKENIZER_DIR, f), path.join(dir, f))
  return dir
}

/** A stage context rooted at `dir` (paths resolve against it) with its own cache folder. */
export const context = (dir: string, id: string, kind: string, cacheDir = tempDir("lm-cache")) => ({
  id, kind, resolvePath: (p: string) => path.resolve(dir, p), runDir: dir, cacheDir, dryRun: false
})

/** The model as the bytes of a safetensors file (tensors and metadata). */
export const bytesOf = (model: Model.Model) =>
  Effect.gen(function* () {
    const file = path.join(tempDir("lm-bytes"), "model.safetensors")
    yield* Safetensors.write(file, model)
    return fs.readFileSync(file)
  })
