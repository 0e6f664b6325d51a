import { assert, describe, expect, it } from "@effect/vitest"
import * as Safetensors from "@crucible/core/io/safetensors/Safetensors"
import * as Model from "@crucible/core/model/Model"
import { fromNumbers } from "@crucible/core/tensor/DType"
import * as TensorRef from "@crucible/core/tensor/TensorRef"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as LmConfig from "../../src/lm/LmConfig.ts"
import * as LmWeights from "../../src/lm/LmWeights.ts"

const FIXTURES = path.join(import.meta.dirname, "..", "..", "fixtures", "lm")
const CASES = ["gpt2", "llama", "llama-tied", "qwen2", "qwen3", "mistral"] as const

const readFixture = (name: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const config = yield* LmConfig.read(path.join(FIXTURES, name))
      const model = yield* Safetensors.read(path.join(FIXTURES, name, "model.safetensors"))
      return { config, model, weights: yield* LmWeights.fromModel(config, model) }
    })
  )

/** `model` with its tensors renamed / replaced / removed. */
const edit = (model: Model.Model, f: (refs: Array<TensorRef.TensorRef>) => Array<TensorRef.TensorRef>) => Model.make(model.source, f([...model.tensors.values()]))
const f32 = (name: string, shape: ReadonlyArray<number>, data: Float32Array) =>
  TensorRef.fromBytes(name, "F32", shape, new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice())

describe("LmWeights", () => {
  it.effect("specs are exactly the tensors the PyTorch reference wrote (HF names, HF shapes, state_dict order)", () =>
    Effect.gen(function* () {
      for (const name of CASES) {
        const { config, model } = yield* readFixture(name)
        const specs = LmWeights.specs(config)
        assert.deepStrictEqual(specs.map((s) => s.name), [...model.tensors.keys()], name)
        for (const s of specs) assert.deepStrictEqual(s.shape, model.tensors.get(s.name)!.shape, s.name)
        assert.strictEqual(LmWeights.parameterCount(config), specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0))
      }
      const { config } = yield* readFixture("qwen3")
      const names = LmWeights.specs(config).map((s) => s.name)
      expect(names).toContain("model.layers.1.self_attn.q_norm.weight")
      expect(names).not.toContain("lm_head.weight") // tied
      const q = LmWeights.specs(config).find((s) => s.name === "model.layers.0.self_attn.q_proj.weight")!
      assert.deepStrictEqual([q.shape, q.layout], [[32, 16], "linear"]) // heads·head_dim = 4·8 rows
      const gpt2 = LmWeights.specs((yield* readFixture("gpt2")).config).find((s) => s.name === "transformer.h.0.attn.c_attn.weight")!
      assert.deepStrictEqual([gpt2.shape, gpt2.layout], [[16, 48], "plain"]) // Conv1D: [in, out]
    })
  )

  it.effect("init: seeded per tensor, N(0, initializer_range), gpt2's residual projections scaled, norms 1, biases 0", () =>
    Effect.gen(function* () {
      const config = yield* LmConfig.decode(
        { model_type: "llama", vocab_size: 500, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 128, attention_bias: true, initializer_range: 0.05 },
        "x"
      )
      const a = LmWeights.init(config, 7)
      const b = LmWeights.init(config, 7)
      const c = LmWeights.init(config, 8)
      assert.deepStrictEqual(a.get("model.embed_tokens.weight")!.data, b.get("model.embed_tokens.weight")!.data)
      assert.notDeepEqual(a.get("model.embed_tokens.weight")!.data, c.get("model.embed_tokens.weight")!.data)
      const std = (x: Float32Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length)
      // 32,000 draws: the sample std is within ~1% of 0.05
      expect(std(a.get("model.embed_tokens.weight")!.data)).toBeCloseTo(0.05, 2)
      assert.isTrue(a.get("model.norm.weight")!.data.every((v) => v === 1))
      assert.isTrue(a.get("model.layers.0.self_attn.q_proj.bias")!.data.every((v) => v === 0))
      yield* LmWeights.validate(config, a)
      const gpt2 = yield* LmConfig.decode({ model_type: "gpt2", n_embd: 64, n_layer: 8, n_head: 4, vocab_size: 100, n_positions: 32 }, "x")
      const g = LmWeights.init(gpt2, 1)
      // transformers: c_proj weights N(0, 0.02/√(2·n_layer)) = 0.005
      expect(std(g.get("transformer.h.0.mlp.c_proj.weight")!.data)).toBeCloseTo(0.005, 3)
      expect(std(g.get("transformer.h.0.mlp.c_fc.weight")!.data)).toBeCloseTo(0.02, 2)
    })
  )

  it.effect("fromModel: any float dtype, gpt2 without the transformer. prefix, buffers and a tied lm_head ignored", () =>
    Effect.gen(function* () {
      const { config, model, weights } = yield* readFixture("gpt2")
      // openai-community/gpt2 stores `h.0.…`, `wte.weight` and the causal-mask buffers
      const hub = edit(model, (refs) => [
        ...refs.map((r) => f32(r.name.replace(/^transformer\./, ""), r.shape, weights.get(r.name)!.data)),
        f32("h.0.attn.bias", [1, 1, 9, 9], new Float32Array(81)),
        f32("lm_head.weight", [61, 16], weights.get("transformer.wte.weight")!.data)
      ])
      const back = yield* LmWeights.fromModel(config, hub)
      assert.deepStrictEqual([...back.keys()], [...weights.keys()])
      for (const [n, t] of weights) assert.deepStrictEqual(back.get(n)!.data, t.data, n)
      // bf16 weights are read as float32 (bf16 is float32's top half: values round to 8 bits of mantissa)
      const bf16 = edit(model, (refs) => refs.map((r) => TensorRef.fromBytes(r.name, "BF16", r.shape, fromNumbers(weights.get(r.name)!.data, "BF16"))))
      const fromBf16 = yield* LmWeights.fromModel(config, bf16)
      const w = weights.get("transformer.h.1.mlp.c_fc.weight")!.data
      const r = fromBf16.get("transformer.h.1.mlp.c_fc.weight")!.data
      for (let i = 0; i < w.length; i++) expect(Math.abs(r[i]! - w[i]!)).toBeLessThanOrEqual(Math.abs(w[i]!) / 256)
    })
  )

  it.effect("fromModel names the missing, misshapen or unexpected tensor", () =>
    Effect.gen(function* () {
      const { config, weights } = yield* readFixture("llama")
      // in memory: the fixture's file is closed once readFixture's scope ends
      const model = LmWeights.toModel(config, weights, "llama/model.safetensors")
      const missing = yield* Effect.flip(LmWeights.fromModel(config, edit(model, (refs) => refs.filter((r) => r.name !== "model.layers.1.mlp.up_proj.weight"))))
      assert.strictEqual(missing._tag, "LmWeightsError")
      expect(missing.message).toContain('"model.layers.1.mlp.up_proj.weight"')
      expect(missing.message).toContain("missing")
      const misshapen = yield* Effect.flip(
        LmWeights.fromModel(config, edit(model, (refs) => refs.map((r) => (r.name === "model.norm.weight" ? f32(r.name, [8, 2], new Float32Array(16)) : r))))
      )
      expect(misshapen.message).toContain('"model.norm.weight"')
      expect(misshapen.message).toContain("[8, 2]")
      expect(misshapen.message).toContain("[16]")
      const extra = yield* Effect.flip(LmWeights.fromModel(config, edit(model, (refs) => [...refs, f32("model.layers.2.input_layernorm.weight", [16], new Float32Array(16))])))
      expect(extra.message).toContain('"model.layers.2.input_layernorm.weight"')
      expect(extra.message).toContain("2 layers")
      const ints = yield* Effect.flip(
        LmWeights.fromModel(config, edit(model, (refs) => refs.map((r) => (r.name === "model.norm.weight" ? TensorRef.fromBytes(r.name, "I32", [16], new Uint8Array(64)) : r))))
      )
      expect(ints.message).toContain("I32")
    })
  )

  it.effect("toModel writes safetensors that read back equal, with the config in the metadata", () =>
    Effect.gen(function* () {
      const { config, weights } = yield* readFixture("qwen3")
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lmweights-"))
      const file = path.join(dir, "model.safetensors")
      yield* Safetensors.write(file, LmWeights.toModel(config, weights, "test", { note: "kept" }))
      yield* Effect.scoped(
        Effect.gen(function* () {
          const model = yield* Safetensors.read(file)
          assert.strictEqual(model.metadata["note"], "kept")
          const again = yield* LmConfig.configOf(model, undefined, (p) => p)
          assert.deepStrictEqual(again.raw, config.raw)
          const back = yield* LmWeights.fromModel(again, model)
          for (const [n, t] of weights) assert.deepStrictEqual(back.get(n)!.data, t.data, n)
        })
      )
      fs.rmSync(dir, { recursive: true })
    })
  )
})
