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
})

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
