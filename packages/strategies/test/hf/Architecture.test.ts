import { Effect, Result } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import * as Architecture from "../../src/hf/Architecture.ts"

// config.json as the Hub serves them (trimmed to the keys that matter plus a few that do not).
const configs = {
  llama: { architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: 4096, num_attention_heads: 32, num_hidden_layers: 32, num_key_value_heads: 8, rms_norm_eps: 1e-5, tie_word_embeddings: false, torch_dtype: "bfloat16", vocab_size: 128256 },
  mistral: { architectures: ["MistralForCausalLM"], model_type: "mistral", hidden_size: 4096, num_hidden_layers: 32, sliding_window: 4096, tie_word_embeddings: false, vocab_size: 32000 },
  qwen2: { architectures: ["Qwen2ForCausalLM"], model_type: "qwen2", hidden_size: 896, num_hidden_layers: 24, tie_word_embeddings: true, vocab_size: 151936 },
  qwen3: { architectures: ["Qwen3ForCausalLM"], model_type: "qwen3", hidden_size: 1024, num_hidden_layers: 28, tie_word_embeddings: true, head_dim: 128 },
  gemma: { architectures: ["GemmaForCausalLM"], model_type: "gemma", hidden_size: 2048, num_hidden_layers: 18, vocab_size: 256000 },
  gemma2: { architectures: ["Gemma2ForCausalLM"], model_type: "gemma2", hidden_size: 2304, num_hidden_layers: 26, final_logit_softcapping: 30.0, tie_word_embeddings: true },
  phi3: { architectures: ["Phi3ForCausalLM"], model_type: "phi3", hidden_size: 3072, num_hidden_layers: 32, tie_word_embeddings: false, vocab_size: 32064 },
  gpt2: { architectures: ["GPT2LMHeadModel"], model_type: "gpt2", n_embd: 768, n_head: 12, n_layer: 12, n_positions: 1024, vocab_size: 50257 },
  mixtral: { architectures: ["MixtralForCausalLM"], model_type: "mixtral", hidden_size: 4096, num_hidden_layers: 32, num_local_experts: 8, num_experts_per_tok: 2, tie_word_embeddings: false }
} as const

const arch = (config: Record<string, unknown>) => {
  const r = Architecture.fromConfig(config)
  if (Result.isFailure(r)) throw new Error(r.failure.message)
  return r.success
}

describe("Architecture.fromConfig", () => {
  it("llama-like families: model.layers., embed_tokens, norm, lm_head unless tied", () => {
    expect(arch(configs.llama)).toEqual({
      family: "llama",
      layerPrefix: "model.layers.",
      layerCount: 32,
      tied: false,
      embedding: "model.embed_tokens.weight",
      lmHead: "lm_head.weight",
      nonLayer: ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"]
    })
    for (const [name, layers] of [["mistral", 32], ["phi3", 32], ["mixtral", 32]] as const) {
      expect(arch(configs[name])).toMatchObject({ family: name, layerPrefix: "model.layers.", layerCount: layers, tied: false, lmHead: "lm_head.weight" })
    }
  })

  it("tied embeddings: no lm_head tensor (qwen2/qwen3 say so, gemma/gemma2 tie by default)", () => {
    for (const [name, layers] of [["qwen2", 24], ["qwen3", 28], ["gemma", 18], ["gemma2", 26]] as const) {
      const a = arch(configs[name])
      expect(a).toMatchObject({ family: name, layerCount: layers, tied: true, embedding: "model.embed_tokens.weight" })
      expect(a.lmHead).toBeUndefined()
      expect(a.nonLayer).toEqual(["model.embed_tokens.weight", "model.norm.weight"])
    }
    // An explicit false wins over a family's default.
    expect(arch({ ...configs.gemma, tie_word_embeddings: false }).nonLayer).toContain("lm_head.weight")
  })

  it("gpt2: transformer.h., n_layer, wte/wpe and ln_f, tied by default", () => {
    expect(arch(configs.gpt2)).toEqual({
      family: "gpt2",
      layerPrefix: "transformer.h.",
      layerCount: 12,
      tied: true,
      embedding: "transformer.wte.weight",
      lmHead: undefined,
      nonLayer: ["transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight", "transformer.ln_f.bias"]
    })
  })

  it("architectures[0] when model_type is missing", () => {
    const { model_type: _, ...noType } = configs.mistral
    expect(arch(noType).family).toBe("mistral")
  })

  it("unknown families and missing layer counts are errors naming the file", () => {
    const unknown = Architecture.fromConfig({ model_type: "bert", num_hidden_layers: 12 }, "/m/config.json")
    expect(Result.isFailure(unknown) && unknown.failure.message).toMatch(/^\/m\/config\.json: unknown architecture "bert"; known model_type values: llama/)
    const noCount = Architecture.fromConfig({ model_type: "gpt2", num_hidden_layers: 12 }, "/g/config.json")
    expect(Result.isFailure(noCount) && noCount.failure.message).toBe(`/g/config.json: gpt2 config needs "n_layer" as a whole number ≥ 0, got null`)
  })
})

describe("Architecture.readConfig", () => {
  it("parses folder/config.json; a missing or malformed one is an ArchitectureError naming the file", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-arch-"))
    try {
      fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(configs.qwen2))
      expect(await Effect.runPromise(Architecture.readConfig(dir))).toEqual(configs.qwen2)
      fs.writeFileSync(path.join(dir, "config.json"), "[1, 2]")
      const notObject = await Effect.runPromise(Effect.flip(Architecture.readConfig(dir)))
      expect(notObject.message).toBe(`${path.join(dir, "config.json")}: expected a JSON object`)
      fs.writeFileSync(path.join(dir, "config.json"), "{ nope")
      expect((await Effect.runPromise(Effect.flip(Architecture.readConfig(dir)))).message).toMatch(/config\.json: not valid JSON/)
      const missing = await Effect.runPromise(Effect.flip(Architecture.readConfig(path.join(dir, "absent"))))
      expect(missing._tag).toBe("ArchitectureError")
      expect(missing.message).toMatch(/absent\/config\.json: cannot read/)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe("layer names", () => {
  const llama = { layerPrefix: "model.layers." }
  it("layerOf: the index after the prefix, undefined outside the layers", () => {
    expect(Architecture.layerOf(llama, "model.layers.17.mlp.up_proj.weight")).toBe(17)
    expect(Architecture.layerOf(llama, "model.layers.0.input_layernorm.weight")).toBe(0)
    expect(Architecture.layerOf(llama, "model.norm.weight")).toBeUndefined()
    expect(Architecture.layerOf(llama, "model.layers.x.weight")).toBeUndefined()
    expect(Architecture.layerOf({ layerPrefix: "transformer.h." }, "transformer.h.3.attn.c_attn.bias")).toBe(3)
  })

  it("renumber: only the index changes; tensors outside the layers are unchanged", () => {
    expect(Architecture.renumber(llama, "model.layers.17.mlp.up_proj.weight", 2)).toBe("model.layers.2.mlp.up_proj.weight")
    expect(Architecture.renumber(llama, "model.layers.3.self_attn.q_proj.weight", 40)).toBe("model.layers.40.self_attn.q_proj.weight")
    expect(Architecture.renumber(llama, "lm_head.weight", 5)).toBe("lm_head.weight")
  })

  it("fromTensorNames: the common prefix and one more than the highest index", () => {
    expect(Architecture.fromTensorNames(["lm_head.weight", "model.layers.0.a", "model.layers.10.a", "model.layers.2.a", "model.norm.weight"])).toEqual({ layerPrefix: "model.layers.", layerCount: 11 })
    expect(Architecture.fromTensorNames(["transformer.wte.weight", "transformer.h.0.ln_1.weight", "transformer.h.11.ln_1.weight"])).toEqual({ layerPrefix: "transformer.h.", layerCount: 12 })
    expect(Architecture.fromTensorNames(["fc1.weight", "fc2.weight"])).toBeUndefined()
  })

  it("isInputEmbedding: embeddings before the layers, not the final norm or lm_head", () => {
    for (const name of ["model.embed_tokens.weight", "transformer.wte.weight", "transformer.wpe.weight"]) expect(Architecture.isInputEmbedding(name)).toBe(true)
    for (const name of ["model.norm.weight", "lm_head.weight", "transformer.ln_f.bias"]) expect(Architecture.isInputEmbedding(name)).toBe(false)
  })

  it("every family's nonLayer starts with its input embeddings and nothing else is one", () => {
    for (const config of Object.values(configs)) {
      const a = arch(config)
      expect(Architecture.isInputEmbedding(a.embedding)).toBe(true)
      expect(a.nonLayer.filter((n) => !Architecture.isInputEmbedding(n)).every((n) => /norm|ln_f|lm_head/.test(n))).toBe(true)
    }
  })
})
