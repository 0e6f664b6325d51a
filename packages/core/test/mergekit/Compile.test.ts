// The mergekit compiler on the corpus configs (models from a fake Hugging Face cache of tiny
// LLaMA folders): the IR a user would write, mergekit's parameter forms in Crucible's syntax,
// positioned errors, and Hub ids resolved from the cache or refused with the expected path.
import { beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Mergekit } from "../../src/index.ts"
import { writeTinyLlama } from "../../../strategies/test/hf/tinyLlama.ts"

const corpus = "/work/shared/corpus/mergekit-examples"
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-mergekit-"))
const env = { HF_HOME: path.join(dir, "hf") }
const HUB = ["psmathur/orca_mini_v3_13b", "garage-bAInd/Platypus2-13B", "WizardLM/WizardLM-13B-V1.2", "WizardLM/WizardMath-13B-V1.0", "TheBloke/Llama-2-13B-fp16", "mistralai/Mistral-7B-Instruct-v0.2", "BioMistral/BioMistral-7B", "mistralai/Mistral-7B-v0.1"]
const snapshot = (id: string) => path.join(env.HF_HOME, "hub", `models--${id.replace("/", "--")}`, "snapshots", "abc123")

beforeAll(async () => {
  for (const [seed, id] of HUB.entries()) {
    const repo = path.join(env.HF_HOME, "hub", `models--${id.replace("/", "--")}`)
    fs.mkdirSync(path.join(repo, "refs"), { recursive: true })
    fs.writeFileSync(path.join(repo, "refs", "main"), "abc123\n")
    await writeTinyLlama(snapshot(id), { layers: 4, hidden: 4, vocab: 8, seed })
  }
  for (const f of fs.readdirSync(corpus).filter((f) => f.endsWith(".yml"))) fs.copyFileSync(path.join(corpus, f), path.join(dir, f))
  await writeTinyLlama(path.join(dir, "model_a"), { layers: 4, hidden: 4, vocab: 8, seed: 20 })
  await writeTinyLlama(path.join(dir, "model_b"), { layers: 4, hidden: 4, vocab: 8, seed: 21 })
})

const compileFile = (name: string, text = fs.readFileSync(path.join(dir, name), "utf8")) => Mergekit.compile(text, { file: path.join(dir, name), env })
const stage = (c: Mergekit.Compiled, id: string) => c.ir!.stages.find((s) => s.id === id)!

describe("mergekit compiler", () => {
  it("compiles every corpus example without a problem", () => {
    for (const f of fs.readdirSync(corpus).filter((f) => f.endsWith(".yml"))) {
      const c = compileFile(f)
      expect(c.problems.filter((p) => p.severity !== "warning"), f).toEqual([])
      expect(c.ir?.stages.at(-1)?.uses, f).toBe("save")
    }
  })

  it("ties.yml: per-model weights and densities (scalars, gradients, filters as globs), base, dtype", () => {
    const c = compileFile("ties.yml")
    expect(c.ir!.stages.map((s) => s.id)).toEqual(["load_Llama-2-13B-fp16", "load_orca_mini_v3_13b", "load_Platypus2-13B", "load_WizardMath-13B-V1_0", "merge", "save"])
    expect(stage(c, "load_orca_mini_v3_13b").with).toEqual({ path: snapshot("psmathur/orca_mini_v3_13b") })
    expect(stage(c, "merge")).toEqual({
      id: "merge", uses: "merge/ties", needs: [],
      with: {
        base: "load_Llama-2-13B-fp16",
        models: ["load_orca_mini_v3_13b", "load_Platypus2-13B", "load_WizardMath-13B-V1_0"],
        weights: [1, { gradient: [0, 0.3, 0.7, 1] }, [{ filter: "*mlp*", value: 0.5 }, { filter: "*", value: 0 }]],
        density: [{ gradient: [1, 0.7, 0.1] }, 0.5, 0.33],
        normalize: true
      }
    })
    expect(stage(c, "save").with).toEqual({ model: "merge", path: "merged/", dtype: "float16" })
    expect(c.notes.join()).toContain("int8_mask")
  })

  it("gradient-slerp.yml: one slice of whole models is the models: syntax; t's filters and gradients", async () => {
    // Whole models: 40 layers, as the config's layer_range says.
    for (const id of ["psmathur/orca_mini_v3_13b", "garage-bAInd/Platypus2-13B"]) await writeTinyLlama(snapshot(id), { layers: 40, hidden: 2, vocab: 4, seed: 3 })
    const c = compileFile("gradient-slerp.yml")
    expect(stage(c, "merge").with).toEqual({
      models: ["load_orca_mini_v3_13b", "load_Platypus2-13B"],
      t: [
        { filter: "*self_attn*", value: { gradient: [0, 0.5, 0.3, 0.7, 1] } },
        { filter: "*mlp*", value: { gradient: [1, 0.5, 0.7, 0.3, 0] } },
        { filter: "*", value: 0.5 }
      ]
    })
    // Partial ranges: slice stages and a stack.
    const f = compileFile("orcamini-platy-44layer.yml")
    expect(f.ir!.stages.filter((s) => s.uses === "slice").map((s) => s.with)).toEqual([
      { model: "load_orca_mini_v3_13b", layers: [0, 24] },
      { model: "load_Platypus2-13B", layers: [20, 40] }
    ])
    expect(stage(f, "stack").with).toEqual({ models: ["slice_0_orca_mini_v3_13b", "slice_1_Platypus2-13B"] })
    for (const id of ["psmathur/orca_mini_v3_13b", "garage-bAInd/Platypus2-13B"]) await writeTinyLlama(snapshot(id), { layers: 4, hidden: 4, vocab: 8, seed: 1 })
  })

  it("a Hub model missing from the cache: the typed error names the expected folder, at the model's line", () => {
    const c = compileFile("missing.yml", "models:\n  - model: nobody/nothing\n    parameters: { weight: 1 }\nmerge_method: linear\n")
    expect(c.ir).toBeUndefined()
    expect(c.problems).toHaveLength(1)
    expect(c.problems[0]!.code).toBe("InputUnreadable")
    expect(c.problems[0]!.message).toContain(path.join(env.HF_HOME, "hub", "models--nobody--nothing", "snapshots"))
    expect(c.problems[0]!.message).toContain("never downloads")
    expect(c.problems[0]!.position).toEqual({ line: 2, col: 12 })
  })

  it("a local model folder without config.json is refused at its line, as mergekit refuses it", () => {
    fs.mkdirSync(path.join(dir, "weights_only"), { recursive: true })
    fs.copyFileSync(path.join(dir, "model_a", "model.safetensors"), path.join(dir, "weights_only", "model.safetensors"))
    const c = compileFile("noconfig.yml", "models:\n  - model: model_a\n  - model: weights_only\nmerge_method: linear\n")
    expect(c.problems.map((p) => [p.code, p.position])).toEqual([["InputUnreadable", { line: 3, col: 12 }]])
    expect(c.problems[0]!.message).toContain(`model "weights_only" (${path.join(dir, "weights_only")}) has no config.json`)
  })

  it("unknown keys and methods are positioned, with a did-you-mean and the known names", () => {
    const c = compileFile("bad.yml", "models:\n  - model: model_a\n    paramters: { weight: 1 }\nmerge_method: tie\nbase_modle: model_b\n")
    const byCode = c.problems.map((p) => [p.code, p.position, p.message] as const)
    expect(byCode).toContainEqual(["UnknownKey", { line: 3, col: 5 }, expect.stringContaining('unknown mergekit key "paramters" (did you mean "parameters"?)')])
    expect(byCode).toContainEqual(["InvalidPipeline", { line: 4, col: 15 }, expect.stringMatching(/unknown merge_method "tie" \(did you mean "ties"\?\); known methods: linear, task_arithmetic, ties/)])
    expect(byCode).toContainEqual(["UnknownKey", { line: 5, col: 1 }, expect.stringContaining('(did you mean "base_model"?)')])
  })

  it("a source without layer_range (a misspelt key) says it is missing, beside the unknown key", () => {
    const c = compileFile("norange.yml", "slices:\n  - sources:\n      - model: model_a\n        layer_rang: [0, 2]\nmerge_method: passthrough\n")
    const byCode = c.problems.map((p) => [p.code, p.message] as const)
    expect(byCode).toContainEqual(["UnknownKey", expect.stringContaining('(did you mean "layer_range"?)')])
    expect(byCode).toContainEqual(["InvalidPipeline", expect.stringContaining("this source has no layer_range")])
  })

  it("filters: a substring becomes *…*, glob characters an escaped regex; a model's unmatched filter falls through to the global value", () => {
    expect(Mergekit.Parameters.filterToGlob("mlp")).toBe("*mlp*")
    expect(Mergekit.Parameters.filterToGlob(undefined)).toBe("*")
    expect(Mergekit.Parameters.filterToGlob("a*b.c")).toBe("/a\\*b\\.c/")
    const c = compileFile("fall.yml", "models:\n  - model: model_a\n    parameters:\n      density: { filter: attn, value: 0.2 }\n  - model: model_b\nmerge_method: dare_ties\nbase_model: model_a\nparameters:\n  density: [0.4, 0.6]\n  rescale: false\n")
    expect(c.problems).toEqual([])
    // model_a is the base: only model_b is merged, and it takes the global gradient.
    expect(stage(c, "merge").with).toEqual({ base: "load_model_a", models: ["load_model_b"], density: { gradient: [0.4, 0.6] }, rescale: "none" })
    expect(Mergekit.Parameters.layered([[{ filter: "*attn*", value: 0.2 }], { gradient: [0.4, 0.6] }])).toEqual([{ filter: "*attn*", value: 0.2 }, { filter: "*", value: { gradient: [0.4, 0.6] } }])
  })

  it("several documents (mergekit-multi): a later document's model is an earlier one's output; the unnamed one is saved", () => {
    const text = "name: first\nmodels:\n  - model: model_a\n  - model: model_b\nmerge_method: linear\n---\nmodels:\n  - model: first\n    parameters: { weight: 0.25 }\n  - model: model_b\n    parameters: { weight: 0.75 }\nmerge_method: linear\nout_dtype: bfloat16\n"
    const c = compileFile("multi.yml", text)
    expect(c.problems).toEqual([])
    expect(c.ir!.stages.map((s) => `${s.id}:${s.uses}`)).toEqual(["load_model_a:load", "load_model_b:load", "merge_first:merge/linear", "merge_1:merge/linear", "save:save"])
    expect(stage(c, "merge_1").with).toEqual({ models: ["merge_first", "load_model_b"], weights: [0.25, 0.75] })
    expect(stage(c, "save").with).toEqual({ model: "merge_1", path: "merged/", dtype: "bfloat16" })
  })

  it("a model with a LoRA (model+lora) is refused, saying what to do", () => {
    const c = compileFile("lora.yml", "models:\n  - model: model_a+some/lora\nmerge_method: linear\n")
    expect(c.problems[0]!.message).toContain("merge the adapter into the model first")
  })
  it("slices of a merge method: slice stages per source, a merge per slice (slice parameters over global ones), a stack", () => {
    const text = "slices:\n  - sources:\n      - { model: model_a, layer_range: [0, 2] }\n      - { model: model_b, layer_range: [0, 2] }\n    parameters: { t: 0.3 }\n  - sources:\n      - { model: model_a, layer_range: [1, 3] }\n      - { model: model_b, layer_range: [2, 4] }\nmerge_method: slerp\nbase_model: model_a\nparameters:\n  t: [0, 1]\n"
    const c = compileFile("frank.yml", text)
    expect(c.problems).toEqual([])
    expect(c.ir!.stages.map((s) => s.id)).toEqual(["load_model_a", "load_model_b", "slice_0_model_a", "slice_0_model_b", "merge_0", "slice_1_model_a", "slice_1_model_b", "merge_1", "stack", "save"])
    expect(stage(c, "slice_1_model_b").with).toEqual({ model: "load_model_b", layers: [2, 4] })
    expect(stage(c, "merge_0").with).toEqual({ models: ["slice_0_model_a", "slice_0_model_b"], t: 0.3 })
    expect(stage(c, "merge_1").with).toEqual({ models: ["slice_1_model_a", "slice_1_model_b"], t: { gradient: [0, 1] } })
    expect(stage(c, "stack").with).toEqual({ models: ["merge_0", "merge_1"] })
    const uneven = compileFile("uneven.yml", text.replace("[2, 4]", "[1, 4]"))
    expect(uneven.problems.map((p) => [p.message, p.position])).toEqual([["all sources of a slice must span the same number of layers", { line: 7, col: 7 }]])
  })

  it("tokenizer_source: one tokenizer/align stage per merged input, the merge takes the aligned models; chat_template goes with them", () => {
    const c = compileFile("tok.yml", "models:\n  - model: model_a\n  - model: model_b\nmerge_method: ties\nbase_model: model_a\ntokenizer_source: model_b\nchat_template: chatml\n")
    expect(c.problems).toEqual([])
    expect(stage(c, "merge").with).toEqual({ base: "align_model_a", models: ["align_model_b"] })
    expect(stage(c, "align_model_b").with).toEqual({ models: ["load_model_b"], base: "load_model_a", source: "model:0", chat_template: "chatml", pick: 0 })
    expect(stage(c, "align_model_a").with).toEqual({ models: ["load_model_b"], base: "load_model_a", source: "model:0", chat_template: "chatml", pick: "base" })
    expect(stage(c, "save").with).toEqual({ model: "merge", path: "merged/" })
  })

  it("tokenizer_source naming the base model: model:base (its tokenizer as its folder has it, as mergekit loads it), not the stripped base", () => {
    const c = compileFile("tokbase.yml", "models:\n  - model: model_b\nmerge_method: ties\nbase_model: model_a\ntokenizer_source: model_a\n")
    expect(c.problems).toEqual([])
    expect(stage(c, "align_model_a").with).toEqual({ models: ["load_model_b"], base: "load_model_a", source: "model:base", pick: "base" })
  })

  it("the tokenizer: block: source (default union), tokens (a model, model_token by id or string, zero; force), pad_to_multiple_of go to every align stage", () => {
    const text = [
      "models:", "  - model: model_a", "  - model: model_b", "merge_method: linear", "tokenizer:", "  pad_to_multiple_of: 8", "  tokens:",
      "    <|im_start|>:", "      source: model_b", "    <|im_end|>:", "      source: model_a", "      force: true",
      "    <|renamed|>:", "      source:", "        kind: model_token", "        model: model_b", "        token: \"<s>\"",
      "    <|by_id|>:", "      source: { kind: model_token, model: model_a, token_id: 3 }", "    <|unused|>:", "      source: { kind: zero }",
      "chat_template: llama3", ""
    ].join("\n")
    const c = compileFile("tokblock.yml", text)
    expect(c.problems).toEqual([])
    expect(stage(c, "merge").with.models).toEqual(["align_model_a", "align_model_b"])
    expect(stage(c, "align_model_b").with).toEqual({
      models: ["load_model_a", "load_model_b"], source: "union", pad_to_multiple_of: 8, chat_template: "llama3", pick: 1,
      tokens: {
        "<|im_start|>": { source: { model: 1 } },
        "<|im_end|>": { source: { model: 0 }, force: true },
        "<|renamed|>": { source: { model: 1, token: "<s>" } },
        "<|by_id|>": { source: { model: 0, token_id: 3 } },
        "<|unused|>": { source: "zero" }
      }
    })
    expect(stage(c, "save").with).toEqual({ model: "merge", path: "merged/" })
    const based = compileFile("tokblock2.yml", "models:\n  - model: model_b\nmerge_method: ties\nbase_model: model_a\ntokenizer:\n  source: model_a\n")
    expect(stage(based, "align_model_b").with).toEqual({ models: ["load_model_b"], base: "load_model_a", source: "model:base", pick: 0 })
  })

  it("the tokenizer: block's mistakes are positioned: both tokenizer and tokenizer_source, a token without source, a model outside the merge, an unknown kind", () => {
    const both = compileFile("tokboth.yml", "models:\n  - model: model_a\nmerge_method: linear\ntokenizer_source: union\ntokenizer:\n  source: union\n")
    expect(both.problems.map((p) => [p.message, p.position?.line])).toEqual([["give tokenizer_source or tokenizer, not both (mergekit refuses both)", 6]])
    const bad = compileFile("tokbad.yml", "models:\n  - model: model_a\nmerge_method: linear\ntokenizer:\n  tokens:\n    a:\n      force: true\n    b:\n      source: { kind: one }\n    c:\n      source: model_b\n")
    expect(bad.problems.map((p) => [p.message, p.position?.line])).toEqual([
      ["tokens[\"a\"]: source is needed: a model, { kind: model_token, model, token_id | token }, or { kind: zero }", 7],
      ["tokens[\"b\"]: kind \"one\" is model_token or zero", 9],
      ["\"model_b\" is not one of the merged models", 11]
    ])
    expect(bad.ir).toBeUndefined()
  })

  it("chat_template without a tokenizer: a mergekit name or Jinja text goes to the save (which resolves names), with a note; auto is noted and dropped, as mergekit does", () => {
    const named = compileFile("tmpl.yml", "models:\n  - model: model_a\n  - model: model_b\nmerge_method: linear\nchat_template: chatml\n")
    expect(named.problems).toEqual([])
    expect(stage(named, "save").with).toEqual({ model: "merge", path: "merged/", chat_template: "chatml" })
    expect(named.notes.join("\n")).toContain("mergekit copies the donor's tokenizer as is")
    const auto = compileFile("tmplauto.yml", "models:\n  - model: model_a\nmerge_method: linear\nchat_template: auto\n")
    expect(stage(auto, "save").with).toEqual({ model: "merge", path: "merged/" })
    expect(auto.notes.join("\n")).toContain("chat_template: auto has no effect")
    const misspelt = compileFile("tmplbad.yml", "models:\n  - model: model_a\nmerge_method: linear\ntokenizer_source: base\nchat_template: chatmll\n")
    expect(misspelt.problems.map((p) => [p.message, p.position])).toEqual([["chat_template \"chatmll\" is not a template (did you mean \"chatml\"?): use one of alpaca, chatml, exaone, llama3, mistral, auto, or Jinja text", { line: 5, col: 16 }]])
  })

  it("--out: the save writes the given folder (absolute)", () => {
    const c = Mergekit.compile("models:\n  - model: model_a\nmerge_method: passthrough\n", { file: path.join(dir, "p.yml"), out: "some/where", env })
    expect(stage(c, "save").with).toEqual({ model: "merge", path: `${path.resolve("some/where")}${path.sep}` })
  })
})
