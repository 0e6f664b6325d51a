// mergekit configs through the real CLI, models from a fake Hugging Face cache of tiny LLaMA
// folders: every corpus example validates; `crucible run linear.yml --out DIR` writes the merged
// folder, equal to a float64 reference; `crucible import`'s pipeline, run, writes the same bytes.
import { beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { crucible } from "./cli.ts"
import { writeHubModel } from "./hfCache.ts"
import { readValues, type Values, writeTinyLlama } from "../../../strategies/test/hf/tinyLlama.ts"
import { A, B, rowValue, writeFolder } from "../../../strategies/test/hf/tokenizerFolders.ts"
import { named } from "../../../strategies/src/hf/ChatTemplates.ts"
import { Mergekit } from "@crucible/core"

const corpus = "/work/shared/corpus/mergekit-examples"
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-mergekit-e2e-"))
const env = { HF_HOME: path.join(dir, "hf") }
// The two models the frankenmerge examples slice have the 40 layers their layer_range names.
const HUB: ReadonlyArray<readonly [string, number]> = [
  ["psmathur/orca_mini_v3_13b", 40], ["garage-bAInd/Platypus2-13B", 40], ["WizardLM/WizardLM-13B-V1.2", 40], ["WizardLM/WizardMath-13B-V1.0", 40],
  ["TheBloke/Llama-2-13B-fp16", 40], ["mistralai/Mistral-7B-Instruct-v0.2", 3], ["BioMistral/BioMistral-7B", 3], ["mistralai/Mistral-7B-v0.1", 3]
]
const values = new Map<string, Values>()
const examples = fs.readdirSync(corpus).filter((f) => f.endsWith(".yml")).sort()

beforeAll(async () => {
  for (const [seed, [id, layers]] of HUB.entries()) values.set(id, await writeHubModel(env.HF_HOME, id, { layers, hidden: 4, vocab: 8, seed: seed + 1 }))
  await writeTinyLlama(path.join(dir, "model_a"), { layers: 3, hidden: 4, vocab: 8, seed: 30 })
  await writeTinyLlama(path.join(dir, "model_b"), { layers: 3, hidden: 4, vocab: 8, seed: 31 })
  for (const f of examples) fs.copyFileSync(path.join(corpus, f), path.join(dir, f))
  await writeFolder(path.join(dir, "tok_a"), 1, A)
  await writeFolder(path.join(dir, "tok_b"), 2, B)
})

/** An HF folder's tokenizer.json ids, added tokens included. */
const tokenIds = (folder: string): Map<string, number> => {
  const tok = JSON.parse(fs.readFileSync(path.join(folder, "tokenizer.json"), "utf8")) as { model: { vocab: Record<string, number> }; added_tokens: Array<{ id: number; content: string }> }
  return new Map([...Object.entries(tok.model.vocab), ...tok.added_tokens.map((t) => [t.content, t.id] as const)])
}

describe("mergekit configs through the CLI", () => {
  it.each(examples)("%s validates (models from the HF cache, headers checked)", (example) => {
    const r = crucible(["validate", path.join(dir, example)], { env })
    expect(r.stderr).toBe("")
    expect(r.stdout).toContain("valid")
    expect(r.code).toBe(0)
  })

  it("a missing Hub model: exit 2, the expected cache folder at the config's line", () => {
    fs.writeFileSync(path.join(dir, "missing.yml"), "models:\n  - model: someone/absent-7B\nmerge_method: linear\n")
    const r = crucible(["validate", path.join(dir, "missing.yml")], { env })
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`missing.yml:2:12: [InputUnreadable]`)
    expect(r.stderr).toContain(path.join(env.HF_HOME, "hub", "models--someone--absent-7B", "snapshots"))
  })

  it("crucible run linear.yml --out DIR: the HF folder holds the weighted mean (float64 reference, float16 out)", async () => {
    const out = path.join(dir, "linear-out")
    const r = crucible(["run", path.join(dir, "linear.yml"), "--out", out, "--runs-dir", path.join(dir, "runs"), "--quiet"], { env })
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    expect(fs.existsSync(path.join(out, "config.json"))).toBe(true)
    const merged = await readValues(out)
    const weights: ReadonlyArray<readonly [string, number]> = [["psmathur/orca_mini_v3_13b", 1], ["WizardLM/WizardLM-13B-V1.2", 0.3], ["garage-bAInd/Platypus2-13B", 0.5]]
    const total = weights.reduce((s, [, w]) => s + w, 0)
    const names = [...values.get(weights[0]![0])!.keys()]
    expect([...merged.keys()].sort()).toEqual([...names].sort())
    for (const name of names) {
      const got = merged.get(name)!
      expect(got.dtype).toBe("F16")
      const want = got.values.map((_, k) => weights.reduce((s, [id, w]) => s + w * values.get(id)!.get(name)!.values[k]!, 0) / total)
      // float16 rounding of the float32 merge: half an ulp of float16, relative.
      got.values.forEach((v, k) => expect(Math.abs(v - want[k]!)).toBeLessThanOrEqual(Math.abs(want[k]!) * 2 ** -10 + 1e-7))
    }
  })

  it("validate --out DIR and plan --out DIR: the plan lists the files it would write in DIR, and writes nothing", () => {
    const out = path.join(dir, "planned-out")
    const v = crucible(["validate", path.join(dir, "linear.yml"), "--out", out], { env })
    expect(v.stderr).toBe("")
    expect(v.code).toBe(0)
    const p = crucible(["plan", path.join(dir, "linear.yml"), "--out", out, "--json"], { env })
    expect(p.code).toBe(0)
    const written = JSON.stringify(JSON.parse(p.stdout))
    for (const f of ["model.safetensors", "config.json", "tokenizer.json", "README.md"]) expect(written).toContain(JSON.stringify(path.join(out, f)))
    expect(written).not.toContain(JSON.stringify(path.join(dir, "merged", "config.json")))
    expect(fs.existsSync(out)).toBe(false)
  })

  it("the tokenizer: block, run: union vocabulary with an added zero token, a forced model_token row, padding to 8; chat_template: chatml resolved", async () => {
    const config = [
      "models:", "  - model: tok_a", "  - model: tok_b", "merge_method: linear", "dtype: float32",
      "tokenizer:", "  source: union", "  pad_to_multiple_of: 8", "  tokens:",
      "    <|zero|>:", "      source: { kind: zero }",
      "    a:", "      source: { kind: model_token, model: tok_b, token: x }", "      force: true",
      "chat_template: chatml", ""
    ].join("\n")
    fs.writeFileSync(path.join(dir, "tokblock.yml"), config)
    const out = path.join(dir, "tokblock-out")
    const r = crucible(["run", path.join(dir, "tokblock.yml"), "--out", out, "--runs-dir", path.join(dir, "runs"), "--quiet", "--no-cache"], { env })
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    const ids = tokenIds(out)
    // A's 8 tokens, B's x, y, w, <|im_start|>, <|im_end|>, then <|zero|>: 14, padded to 16 rows.
    expect(ids.size).toBe(14)
    const embed = (await readValues(out)).get("model.embed_tokens.weight")!
    expect(embed.shape).toEqual([16, 3])
    expect(JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8")).vocab_size).toBe(16)
    const row = (token: string) => [...embed.values.subarray(ids.get(token)! * 3, ids.get(token)! * 3 + 3)]
    const idsB = new Map(B.tokens.map((t, i) => [t, i]))
    const idsA = new Map(A.tokens.map((t, i) => [t, i]))
    const near = (got: ReadonlyArray<number>, want: ReadonlyArray<number>) => got.forEach((v, j) => expect(v).toBeCloseTo(want[j]!, 4))
    near(row("<|zero|>"), [0, 0, 0])
    // forced: both models take B's row of "x"; the mean of equal rows is that row
    near(row("a"), [0, 1, 2].map((j) => rowValue(2, idsB.get("x")!, j, false)))
    // "c": each model's own row, averaged
    near(row("c"), [0, 1, 2].map((j) => (rowValue(1, idsA.get("c")!, j, false) + rowValue(2, idsB.get("c")!, j, false)) / 2))
    expect(JSON.parse(fs.readFileSync(path.join(out, "tokenizer_config.json"), "utf8")).chat_template).toBe(named.chatml)
  })

  it("the compiler's template names are the ones ChatTemplates ships", () => {
    expect([...Mergekit.Keys.TEMPLATE_NAMES].sort()).toEqual(Object.keys(named).sort())
  })

  it("chat_template: llama3 without a tokenizer: the save resolves mergekit's name into tokenizer_config.json", () => {
    fs.writeFileSync(path.join(dir, "tmpl.yml"), "models:\n  - model: model_a\n  - model: model_b\nmerge_method: linear\nchat_template: llama3\n")
    const out = path.join(dir, "tmpl-out")
    const r = crucible(["run", path.join(dir, "tmpl.yml"), "--out", out, "--runs-dir", path.join(dir, "runs"), "--quiet", "--no-cache"], { env })
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    const tokenizerConfig = JSON.parse(fs.readFileSync(path.join(out, "tokenizer_config.json"), "utf8"))
    expect(tokenizerConfig.chat_template).toBe(named.llama3)
    expect(tokenizerConfig.tokenizer_class).toBe("LlamaTokenizerFast") // the donor's, otherwise kept
  })

  it("crucible import bio-merge.yml (TIES): the printed pipeline, run, writes the bytes the mergekit config writes", () => {
    const direct = path.join(dir, "bio-direct")
    const imported = path.join(dir, "bio-imported")
    const printed = crucible(["import", path.join(dir, "bio-merge.yml"), "--out", imported], { env })
    expect(printed.code).toBe(0)
    expect(printed.stdout).toContain("uses: merge/ties")
    fs.writeFileSync(path.join(dir, "bio-pipeline.yaml"), printed.stdout)
    const runs = path.join(dir, "runs-bio")
    expect(crucible(["run", path.join(dir, "bio-merge.yml"), "--out", direct, "--runs-dir", runs, "--quiet", "--no-cache"], { env }).code).toBe(0)
    expect(crucible(["run", path.join(dir, "bio-pipeline.yaml"), "--runs-dir", runs, "--quiet", "--no-cache"], { env }).code).toBe(0)
    const weights = (folder: string) => fs.readdirSync(folder).filter((f) => f.endsWith(".safetensors")).sort()
    expect(weights(imported)).toEqual(weights(direct))
    for (const f of weights(direct)) expect(fs.readFileSync(path.join(imported, f)).equals(fs.readFileSync(path.join(direct, f)))).toBe(true)
  })
})
