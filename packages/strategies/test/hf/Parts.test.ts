import { describe, expect, it } from "vitest"
import { DType, Model, TensorRef } from "@crucible/core"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as FolderFiles from "../../src/hf/FolderFiles.ts"
import * as HfFolder from "../../src/hf/HfFolder.ts"
import * as HubId from "../../src/hf/HubId.ts"
import * as ModelCard from "../../src/hf/ModelCard.ts"
import * as ModelConfig from "../../src/hf/ModelConfig.ts"

const tensor = (name: string, shape: ReadonlyArray<number>, dtype: DType.DType = "F32") =>
  TensorRef.fromBytes(name, dtype, shape, new Uint8Array(TensorRef.numel(shape) * DType.byteSize[dtype]))

describe("HubId", () => {
  it("a Hugging Face cache snapshot is its Hub id; any other folder its name", () => {
    expect(HubId.of("/home/u/.cache/huggingface/hub/models--meta-llama--Llama-3.1-8B/snapshots/abc123")).toBe("meta-llama/Llama-3.1-8B")
    expect(HubId.of("/cache/models--gpt2/snapshots/abc")).toBe("gpt2")
    expect(HubId.of("/models/my-merge/")).toBe("my-merge")
    expect(HubId.ofSnapshot("/models/snapshots/abc")).toBeUndefined()
  })
})

describe("ModelConfig.forModel", () => {
  const llama = { model_type: "llama", num_hidden_layers: 32, vocab_size: 32000, torch_dtype: "float32", hidden_size: 4 }
  it("sets torch_dtype from the dtype holding most bytes, the layers present and the embedding's rows; keeps the rest", () => {
    const model = Model.make("m", [tensor("model.embed_tokens.weight", [10, 4], "BF16"), tensor("model.layers.0.mlp.up_proj.weight", [8, 4], "BF16"), tensor("model.layers.2.input_layernorm.weight", [4]), tensor("lm_head.weight", [10, 4], "BF16")])
    expect(ModelConfig.forModel(llama, model)).toEqual({ ...llama, num_hidden_layers: 3, vocab_size: 10, torch_dtype: "bfloat16" })
  })
  it("gpt2 counts n_layer; an unknown family keeps its vocabulary and takes the layers from the names", () => {
    const gpt2 = Model.make("g", [tensor("transformer.wte.weight", [7, 4]), tensor("transformer.h.0.attn.c_attn.weight", [4, 12])])
    expect(ModelConfig.forModel({ model_type: "gpt2", n_layer: 12, vocab_size: 50257 }, gpt2)).toEqual({ model_type: "gpt2", n_layer: 1, vocab_size: 7, torch_dtype: "float32" })
    const odd = Model.make("o", [tensor("model.embed_tokens.weight", [7, 4]), tensor("model.layers.4.w", [4])])
    expect(ModelConfig.forModel({ model_type: "mamba", vocab_size: 99 }, odd)).toEqual({ model_type: "mamba", vocab_size: 99, num_hidden_layers: 5, torch_dtype: "float32" })
  })
  it("gpt2 as openai-community/gpt2 stores it (h.N., wte.weight: no transformer. prefix, as mergekit's aliases) counts its layers and rows too", () => {
    const gpt2 = Model.make("g", [tensor("wte.weight", [7, 4]), tensor("wpe.weight", [16, 4]), tensor("h.0.attn.c_attn.weight", [4, 12]), tensor("h.3.ln_1.weight", [4])])
    expect(ModelConfig.forModel({ model_type: "gpt2", n_layer: 3, vocab_size: 50257 }, gpt2)).toEqual({ model_type: "gpt2", n_layer: 4, vocab_size: 7, torch_dtype: "float32" })
  })
})

describe("FolderFiles", () => {
  it("copies small non-weight files, not hidden ones, weights, config.json or README.md; tokenizer files from tokenizer_from", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-hf-files-"))
    const donor = path.join(root, "donor")
    const tok = path.join(root, "tok")
    fs.mkdirSync(donor)
    fs.mkdirSync(tok)
    for (const name of ["config.json", "README.md", ".gitattributes", "model.safetensors", "model-00001-of-00002.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "tokenizer.json", "merges.txt", "generation_config.json", "LICENSE"]) fs.writeFileSync(path.join(donor, name), name)
    fs.mkdirSync(path.join(donor, "onnx"))
    for (const name of ["tokenizer.json", "tokenizer.model", "generation_config.json"]) fs.writeFileSync(path.join(tok, name), `tok ${name}`)
    const names = (files: ReadonlyArray<FolderFiles.Copied>) => files.map((f) => `${path.basename(path.dirname(f.from))}/${f.name}`)
    expect(names(await Effect.runPromise(FolderFiles.fromDonor(donor, undefined)))).toEqual(["donor/LICENSE", "donor/generation_config.json", "donor/merges.txt", "donor/tokenizer.json"])
    expect(names(await Effect.runPromise(FolderFiles.fromDonor(donor, tok)))).toEqual(["donor/LICENSE", "donor/generation_config.json", "tok/tokenizer.json", "tok/tokenizer.model"])
    fs.rmSync(root, { recursive: true, force: true })
  })
})

describe("ModelCard", () => {
  it("names the base, the other models, the methods and the pipeline", () => {
    const card = ModelCard.render({ provenance: { folders: ["/m/base", "/m/chat"], donor: "/m/base", base: "/m/base", methods: ["merge/ties"] }, pipeline: "p", stage: "out", hasConfig: true })
    expect(card).toContain('base_model:\n- "base"\n- "chat"\n')
    expect(card).toContain("Method: `merge/ties`, with `base` as the base.")
    expect(card).toContain("Models merged:\n\n- `chat`")
    expect(card).not.toContain("No `config.json`")
  })
})

describe("HfFolder.contents", () => {
  it("shards of 5·10⁹ parameters of the written dtype by default, as mergekit; shard_size wins", async () => {
    const shardSize = (dtype: DType.DType, given?: number) =>
      Effect.runPromise(Effect.map(HfFolder.contents("/nonexistent/out", Model.make("m", [tensor("w", [2, 2], dtype)]), { stage: "s", provenance: undefined, shardSize: given }), (c) => c.shardSize))
    expect(await shardSize("BF16")).toBe(1e10)
    expect(await shardSize("F32")).toBe(2e10)
    expect(await shardSize("F32", 4096)).toBe(4096)
  })
})
