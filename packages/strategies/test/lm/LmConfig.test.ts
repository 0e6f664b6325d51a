import { assert, describe, expect, it } from "@effect/vitest"
import * as Model from "@crucible/core/model/Model"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as LmConfig from "../../src/lm/LmConfig.ts"

const FIXTURES = path.join(import.meta.dirname, "..", "..", "fixtures", "lm")
const fixture = (name: string) => JSON.parse(fs.readFileSync(path.join(FIXTURES, name, "config.json"), "utf8")) as Record<string, unknown>

describe("LmConfig", () => {
  it.effect("gpt2: sizes from n_embd / n_head / n_inner, LayerNorm eps, gelu_new, always tied", () =>
    Effect.gen(function* () {
      const c = yield* LmConfig.read(path.join(FIXTURES, "gpt2"))
      assert.strictEqual(c.family, "gpt2")
      assert.deepStrictEqual(
        [c.vocabSize, c.hiddenSize, c.layers, c.heads, c.kvHeads, c.headDim, c.intermediateSize, c.maxPositions, c.normEps],
        [61, 16, 2, 4, 4, 4, 24, 9, 1e-5]
      )
      assert.isTrue(c.tied)
      assert.strictEqual(c.activation, "gelu_new")
      // n_inner null means 4·n_embd (transformers' GPT2MLP)
      const d = yield* LmConfig.decode({ ...fixture("gpt2"), n_inner: null }, "x")
      assert.strictEqual(d.intermediateSize, 64)
    })
  )

  it.effect("llama family: GQA, head_dim, biases as transformers' classes have them, rope scaling", () =>
    Effect.gen(function* () {
      const llama = yield* LmConfig.read(path.join(FIXTURES, "llama", "config.json"))
      assert.deepStrictEqual([llama.family, llama.heads, llama.kvHeads, llama.headDim, llama.tied], ["llama", 4, 2, 4, false])
      assert.deepStrictEqual(llama.ropeScaling, { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 1024 })
      assert.deepStrictEqual([llama.qkvBias, llama.oBias, llama.mlpBias, llama.qkNorm], [false, false, false, false])
      const tied = yield* LmConfig.read(path.join(FIXTURES, "llama-tied"))
      assert.deepStrictEqual([tied.tied, tied.qkvBias, tied.oBias, tied.mlpBias], [true, true, true, true])
      // qwen2: q/k/v biases whatever attention_bias says, none on o
      const qwen2 = yield* LmConfig.decode({ ...fixture("qwen2"), attention_bias: false }, "x")
      assert.deepStrictEqual([qwen2.qkvBias, qwen2.oBias], [true, false])
      assert.deepStrictEqual(qwen2.ropeScaling, { type: "none" })
      assert.strictEqual(qwen2.ropeTheta, 1e6)
      const qwen3 = yield* LmConfig.read(path.join(FIXTURES, "qwen3"))
      assert.deepStrictEqual([qwen3.headDim, qwen3.qkNorm, qwen3.tied], [8, true, true])
      // qwen3's class defaults head_dim to 128, not hidden/heads
      const { head_dim: _, ...noHeadDim } = fixture("qwen3")
      assert.strictEqual((yield* LmConfig.decode(noHeadDim, "x")).headDim, 128)
      const mistral = yield* LmConfig.read(path.join(FIXTURES, "mistral"))
      assert.deepStrictEqual([mistral.kvHeads, mistral.slidingWindow, mistral.qkvBias], [1, 4, false])
      assert.deepStrictEqual(mistral.ropeScaling, { type: "linear", factor: 2 })
      // transformers ≥ 5 writes rope_parameters
      const v5 = yield* LmConfig.decode({ ...fixture("llama"), rope_scaling: undefined, rope_theta: undefined, rope_parameters: { rope_type: "linear", factor: 3, rope_theta: 500000 } }, "x")
      assert.deepStrictEqual([v5.ropeTheta, v5.ropeScaling], [500000, { type: "linear", factor: 3 }])
      assert.deepStrictEqual(llama.raw, fixture("llama"))
    })
  )

  it.effect("refuses what it does not implement, naming the file and the field", () =>
    Effect.gen(function* () {
      const fail = (raw: unknown) => Effect.flip(LmConfig.decode(raw, "some/config.json"))
      const unknown = yield* fail({ ...fixture("llama"), model_type: "falcon" })
      assert.strictEqual(unknown._tag, "LmConfigError")
      assert.strictEqual(unknown.field, "model_type")
      expect(unknown.message).toContain("some/config.json")
      expect(unknown.message).toContain('"falcon"')
      const yarn = yield* fail({ ...fixture("llama"), rope_scaling: { rope_type: "yarn", factor: 4 } })
      assert.strictEqual(yarn.field, "rope_scaling.rope_type")
      expect(yarn.message).toContain("yarn")
      const missing = yield* fail({ ...fixture("llama"), hidden_size: undefined })
      assert.strictEqual(missing.field, "hidden_size")
      const gqa = yield* fail({ ...fixture("llama"), num_key_value_heads: 3 })
      assert.strictEqual(gqa.field, "num_key_value_heads")
      const act = yield* fail({ ...fixture("gpt2"), activation_function: "relu" })
      assert.strictEqual(act.field, "activation_function")
      const untied = yield* fail({ ...fixture("gpt2"), tie_word_embeddings: false })
      assert.strictEqual(untied.field, "tie_word_embeddings")
      const sliding = yield* fail({ ...fixture("qwen2"), use_sliding_window: true })
      assert.strictEqual(sliding.field, "use_sliding_window")
      const factor = yield* fail({ ...fixture("llama"), rope_scaling: { type: "linear" } })
      assert.strictEqual(factor.field, "rope_scaling.factor")
      const notJson = yield* Effect.flip(LmConfig.read(path.join(FIXTURES, "generate.py")))
      expect(notJson.message).toContain("generate.py")
      expect(notJson.message).toContain("not valid JSON")
    })
  )

  it.effect("configOf: the parameter, else the model's metadata, else its donor folder, else a pointed error", () =>
    Effect.gen(function* () {
      const resolve = (p: string) => path.join(FIXTURES, p)
      assert.strictEqual((yield* LmConfig.configOf(undefined, "qwen3", resolve)).modelType, "qwen3")
      assert.strictEqual((yield* LmConfig.configOf(undefined, fixture("mistral"), resolve)).modelType, "mistral")
      const fromMeta = Model.make("stage:base", [], { [LmConfig.CONFIG_KEY]: JSON.stringify(fixture("gpt2")) })
      assert.strictEqual((yield* LmConfig.configOf(fromMeta, undefined, resolve)).family, "gpt2")
      // the parameter wins over the metadata
      assert.strictEqual((yield* LmConfig.configOf(fromMeta, "llama", resolve)).family, "llama")
      const fromDonor = { ...Model.make("stage:x", []), provenance: Model.fromFolder(path.join(FIXTURES, "qwen2")) }
      assert.strictEqual((yield* LmConfig.configOf(fromDonor, undefined, resolve)).modelType, "qwen2")
      const none = yield* Effect.flip(LmConfig.configOf(Model.make("stage:y", []), undefined, resolve))
      expect(none.message).toContain("stage:y")
      expect(none.message).toContain("config:")
      // a folder without config.json names the file it looked for
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmconfig-"))
      const empty = yield* Effect.flip(LmConfig.read(dir))
      expect(empty.message).toContain(path.join(dir, "config.json"))
      fs.rmSync(dir, { recursive: true })
      // toJson round-trips
      const c = yield* LmConfig.read(path.join(FIXTURES, "llama"))
      assert.deepStrictEqual(yield* LmConfig.decode(JSON.parse(LmConfig.toJson(c)), "x"), { ...c })
    })
  )
})
