// Every mergekit example of the corpus, run: `crucible run <example> --out DIR` on tiny LLaMA folders
// of the shapes the example expects (40 layers where it slices 13B-like layer ranges), models from
// a fake Hugging Face cache, and every output tensor checked against mergekit's semantics computed
// here in float64 (mergekitReference.ts: gradients over the layer index, substring filters,
// per-model and global parameters, slices). The output folder is checked too: config.json's layer
// count and torch_dtype, the donor's tokenizer files, the model card.
import { beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parse } from "yaml"
import { crucible } from "./cli.ts"
import { snapshotOf, writeHubModel } from "./hfCache.ts"
import { expectedTensor, layerCount, type MergekitConfig, outputLayers, type Tensors } from "./mergekitReference.ts"
import { llamaShapes, readValues, writeTinyLlama } from "../../../strategies/test/hf/tinyLlama.ts"
import { DType } from "@crucible/core"

const corpus = "/work/shared/corpus/mergekit-examples"
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-mergekit-corpus-"))
const env = { HF_HOME: path.join(dir, "hf") }
const SIZE = { hidden: 8, vocab: 16 }
// Each model the corpus names: 40 layers for the 13B examples (their layer_range reaches 40), the
// dtype each example merges in (float16 or bfloat16): mergekit casts inputs to `dtype` before
// merging, Crucible rounds once at save, and the two agree when the inputs are already in it.
const HUB: ReadonlyArray<readonly [string, number]> = [
  ["psmathur/orca_mini_v3_13b", 40], ["garage-bAInd/Platypus2-13B", 40], ["WizardLM/WizardLM-13B-V1.2", 40],
  ["WizardLM/WizardMath-13B-V1.0", 40], ["TheBloke/Llama-2-13B-fp16", 40],
  ["mistralai/Mistral-7B-Instruct-v0.2", 4], ["BioMistral/BioMistral-7B", 4], ["mistralai/Mistral-7B-v0.1", 4]
]
const LOCAL = ["model_a", "model_b"] // arcee_fusion.yml's folders beside the config, bfloat16
const models = new Map<string, Tensors>()
const folders = new Map<string, string>()
const examples = fs.readdirSync(corpus).filter((f) => f.endsWith(".yml")).sort()
const DTYPES = { float16: { safetensors: "F16", halfUlp: 2 ** -11 }, bfloat16: { safetensors: "BF16", halfUlp: 2 ** -8 } } as const
const EXACT = new Set(["passthrough", "arcee_fusion"])
const TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]

beforeAll(async () => {
  for (const [i, [id, layers]] of HUB.entries()) {
    models.set(id, await writeHubModel(env.HF_HOME, id, { layers, ...SIZE, seed: i + 1, dtype: "F16" }))
    folders.set(id, snapshotOf(env.HF_HOME, id))
  }
  for (const [i, name] of LOCAL.entries()) {
    folders.set(name, path.join(dir, name))
    models.set(name, await writeTinyLlama(folders.get(name)!, { layers: 3, ...SIZE, seed: 30 + i, dtype: "BF16" }))
  }
  for (const f of examples) fs.copyFileSync(path.join(corpus, f), path.join(dir, f))
  // float32 models for the precedence and dtype configs below (not in the corpus)
  for (const [i, name] of PRECEDENCE_MODELS.entries()) {
    folders.set(name, path.join(dir, name))
    models.set(name, await writeTinyLlama(folders.get(name)!, { layers: 3, ...SIZE, seed: 40 + i, dtype: "F32" }))
  }
})

const PRECEDENCE_MODELS = ["p_base", "p_a", "p_b"]

/** Runs a config written here; returns the output folder's tensors. */
const runConfig = async (name: string, text: string) => {
  fs.writeFileSync(path.join(dir, name), text)
  const out = path.join(dir, `out-${name.replace(/\.yml$/, "")}`)
  const r = crucible(["run", path.join(dir, name), "--out", out, "--runs-dir", path.join(dir, "runs"), "--quiet", "--no-cache"], { env })
  expect(r.stderr).toBe("")
  expect(r.code).toBe(0)
  return readValues(out)
}

/** The largest |got − want| − tolerance(want) over a tensor (0 when every element is within), and where. */
const worstExcess = (got: ArrayLike<number>, want: ArrayLike<number>, tolerance: (w: number) => number) => {
  let worst = 0, at = 0
  for (let k = 0; k < got.length; k++) {
    const excess = Math.abs(got[k]! - want[k]!) - tolerance(want[k]!)
    if (!Number.isNaN(worst) && !(excess <= worst)) [worst, at] = [excess, k]
  }
  return { worst, at }
}

/** The model whose tokenizer and tagalong files mergekit copies: the base, else a referenced model (Crucible: the first). */
const donorOf = (config: MergekitConfig) => config.base_model ?? config.models?.[0]?.model ?? config.slices![0]!.sources[0]!.model

/** Every model the config names (the model card lists them as base_model). */
const referencedModels = (config: MergekitConfig) =>
  new Set([config.base_model ?? [], (config.models ?? []).map((m) => m.model), (config.slices ?? []).flatMap((s) => s.sources.map((src) => src.model))].flat())

describe("the mergekit corpus through `crucible run --out`", () => {
  it("names every example", () => {
    expect(examples).toEqual(["arcee_fusion.yml", "bio-merge.yml", "gradient-slerp.yml", "linear.yml", "orcamini-platy-44layer.yml", "ties.yml"])
  })

  it.each(examples)("%s: every output tensor equals mergekit's, computed in float64", async (example) => {
    const config = parse(fs.readFileSync(path.join(dir, example), "utf8")) as MergekitConfig
    const dtype = DTYPES[config.dtype as keyof typeof DTYPES]
    const out = path.join(dir, `out-${example.replace(/\.yml$/, "")}`)
    const r = crucible(["run", path.join(dir, example), "--out", out, "--runs-dir", path.join(dir, "runs"), "--quiet", "--no-cache"], { env })
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)

    const tensorsOf = (ref: string) => models.get(ref)!
    const layers = outputLayers(config, (ref) => layerCount(tensorsOf(ref)))
    const card = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"))
    expect(card.num_hidden_layers).toBe(layers)
    expect(card.torch_dtype).toBe(config.dtype)
    for (const f of TOKENIZER_FILES) expect(fs.readFileSync(path.join(out, f), "utf8"), f).toBe(fs.readFileSync(path.join(folders.get(donorOf(config))!, f), "utf8"))
    const readme = fs.readFileSync(path.join(out, "README.md"), "utf8")
    for (const ref of referencedModels(config)) expect(readme).toContain(`- "${ref}"`)

    // Selections (slices, arcee_fusion) copy input values, exact in the output dtype: equal. Merges
    // computed in float32 and rounded once to the output dtype: within half an ulp of the float64
    // value, relative (2⁻¹¹ for float16, 2⁻⁸ for bfloat16; 2⁻¹⁰ of it again for float32's own
    // rounding), or 2⁻²⁴ (float16's subnormal spacing) near zero.
    const tolerance = EXACT.has(config.merge_method) ? () => 0 : (w: number) => dtype.halfUlp * (1 + 2 ** -10) * Math.abs(w) + 2 ** -24
    const merged = await readValues(out)
    const shapes = llamaShapes({ layers, ...SIZE, tied: false })
    expect([...merged.keys()].sort()).toEqual(shapes.map(([n]) => n).sort())
    for (const [name, shape] of shapes) {
      const got = merged.get(name)!
      expect(got.dtype, name).toBe(dtype.safetensors)
      expect(got.shape, name).toEqual(shape)
      const want = expectedTensor(config, tensorsOf, name, shape)
      let worst = 0, at = 0
      got.values.forEach((v, k) => {
        const excess = Math.abs(v - want[k]!) - tolerance(want[k]!)
        if (!Number.isNaN(worst) && !(excess <= worst)) [worst, at] = [excess, k] // a NaN is kept as the worst
      })
      expect(worst, `${name}[${at}]: got ${got.values[at]}, want ${want[at]}`).toBe(0)
    }
  })
})

describe("the mergekit corpus through `crucible import`", () => {
  // The printed pipeline, run, must write what the mergekit config writes: every file, byte for byte.
  it.each(examples)("%s: the imported pipeline, run, writes the folder `crucible run --out` writes", (example) => {
    const stem = example.replace(/\.yml$/, "")
    const direct = path.join(dir, `direct-${stem}`)
    const imported = path.join(dir, `imported-${stem}`)
    const printed = crucible(["import", path.join(dir, example), "--out", imported], { env })
    expect(printed.stderr).toBe("")
    expect(printed.code).toBe(0)
    const pipeline = path.join(dir, `imported-${stem}.yaml`)
    fs.writeFileSync(pipeline, printed.stdout)
    const runs = path.join(dir, "runs-import")
    for (const args of [[path.join(dir, example), "--out", direct], [pipeline]]) {
      const r = crucible(["run", ...args, "--runs-dir", runs, "--quiet", "--no-cache"], { env })
      expect(r.stderr).toBe("")
      expect(r.code).toBe(0)
    }
    const files = (folder: string) => fs.readdirSync(folder).sort()
    expect(files(imported)).toEqual(files(direct))
    for (const f of files(direct)) expect(fs.readFileSync(path.join(imported, f)).equals(fs.readFileSync(path.join(direct, f))), f).toBe(true)
  })
})

describe("mergekit parameter precedence and dtype (configs of this test, float32 models)", () => {
  // float32 merges of float32 inputs: float32's own rounding, relative, plus a little near zero.
  const float32 = (w: number) => 2 ** -20 * Math.abs(w) + 2 ** -30
  const check = async (name: string, text: string) => {
    const merged = await runConfig(name, text)
    const config = parse(text) as MergekitConfig
    const layers = outputLayers(config, (ref) => layerCount(models.get(ref)!))
    for (const [tensor, shape] of llamaShapes({ layers, ...SIZE, tied: false })) {
      const got = merged.get(tensor)!
      const want = expectedTensor(config, (ref) => models.get(ref)!, tensor, shape)
      const { worst, at } = worstExcess(got.values, want, float32)
      expect(worst, `${name} ${tensor}[${at}]: got ${got.values[at]}, want ${want[at]}`).toBe(0)
    }
  }

  it("models: weight and density at the global, per-model and filter levels: a model's own value first, an unmatched filter falls through to the global one", async () => {
    await check("precedence-models.yml", [
      "merge_method: ties", "base_model: p_base", "models:",
      "  - model: p_a", "    parameters:", "      weight: [{ filter: self_attn, value: 0.7 }]", "      density: 0.6",
      "  - model: p_b", "    parameters:", "      weight: 0.4", "      density: [{ filter: mlp, value: 0.3 }]",
      "parameters:", "  weight: [{ filter: mlp, value: 0.2 }, { value: 0.5 }]", "  density: [{ filter: self_attn, value: 0.8 }, { value: 0.9 }]",
      "dtype: float32", ""
    ].join("\n"))
  })

  it("slices: a source's own weight and density over its slice's over the global ones (a gradient over the slice's layers), filters falling through each level", async () => {
    await check("precedence-slices.yml", [
      "merge_method: ties", "base_model: p_base", "slices:",
      "  - sources:", "      - model: p_base", "        layer_range: [0, 2]",
      "      - model: p_a", "        layer_range: [0, 2]", "        parameters: { weight: [{ filter: mlp, value: 3 }] }",
      "      - model: p_b", "        layer_range: [0, 2]",
      "    parameters: { weight: [{ filter: self_attn, value: 2 }], density: 0.5 }",
      "  - sources:", "      - model: p_base", "        layer_range: [2, 3]", "      - model: p_a", "        layer_range: [2, 3]",
      "      - model: p_b", "        layer_range: [2, 3]", "        parameters: { weight: 0.25, density: [{ filter: mlp, value: 0.7 }] }",
      "parameters:", "  weight: [0.5, 1.5]", "  density: 0.8", "dtype: float32", ""
    ].join("\n"))
  })

  it("float32 inputs with dtype: float16: Crucible merges the float32 values and rounds once; mergekit rounds each input to float16 first — the difference stays within the inputs' rounding", async () => {
    const text = "merge_method: linear\nmodels:\n  - model: p_a\n    parameters: { weight: 1 }\n  - model: p_b\n    parameters: { weight: 0.3 }\ndtype: float16\n"
    const merged = await runConfig("dtype16.yml", text)
    const config = parse(text) as MergekitConfig
    const toF16 = (v: Float64Array) => DType.toFloat64(DType.fromNumbers(v, "F16"), "F16")
    // mergekit's inputs: each model's values rounded to float16 (GatherTensors casts to dtype)
    const rounded = (ref: string) => new Map([...models.get(ref)!].map(([n, t]) => [n, { values: toF16(t.values) }]))
    const roundedModels = new Map(["p_a", "p_b"].map((ref) => [ref, rounded(ref)]))
    const halfUlp = (w: number) => 2 ** -11 * (1 + 2 ** -10) * Math.abs(w) + 2 ** -24
    let differing = 0
    for (const [tensor, shape] of llamaShapes({ layers: 3, ...SIZE, tied: false })) {
      const got = merged.get(tensor)!
      expect(got.dtype).toBe("F16")
      // Crucible: the float64 merge of the float32 values, rounded once to float16
      const exact = expectedTensor(config, (ref) => models.get(ref)!, tensor, shape)
      const { worst, at } = worstExcess(got.values, exact, halfUlp)
      expect(worst, `${tensor}[${at}]`).toBe(0)
      // mergekit (in float64 after the cast): the merge of the rounded inputs. The two differ by at
      // most the inputs' float16 rounding, weighted (Σ wᵢ·½ulp(xᵢ) / Σ wᵢ), plus each side's own rounding.
      const mergekitStyle = toF16(expectedTensor(config, (ref) => roundedModels.get(ref)!, tensor, shape))
      const a = models.get("p_a")!.get(tensor)!.values, b = models.get("p_b")!.get(tensor)!.values
      got.values.forEach((v, k) => {
        const inputs = (1 * halfUlp(a[k]!) + 0.3 * halfUlp(b[k]!)) / 1.3
        expect(Math.abs(v - mergekitStyle[k]!), `${tensor}[${k}]`).toBeLessThanOrEqual(inputs + halfUlp(exact[k]!) + halfUlp(mergekitStyle[k]!))
        if (v !== mergekitStyle[k]) differing++
      })
    }
    // not a tautology: some elements do round differently
    expect(differing).toBeGreaterThan(0)
  })
})
