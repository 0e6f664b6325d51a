// Hugging Face folders in and out through the real CLI: two tiny LLaMA folders merged and saved
// to `out/merged/` as a folder transformers loads (shards + index, config, tokenizer, card);
// `crucible plan` lists its files; a SIGKILL during the save leaves no folder, and the next run
// writes it whole.
import { beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Owner } from "@crucible/core"
import { deadOwner } from "../store/children.ts"
import { crucible, startCrucible } from "./cli.ts"
import { readValues, type Values, writeTinyLlama } from "../../../strategies/test/hf/tinyLlama.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-hf-e2e-"))
const pipeline = path.join(dir, "merge.yaml")
let a: Values
let b: Values
beforeAll(async () => {
  a = await writeTinyLlama(path.join(dir, "models", "a"), { layers: 3, hidden: 16, vocab: 48, seed: 11, dtype: "BF16" })
  b = await writeTinyLlama(path.join(dir, "models", "b"), { layers: 3, hidden: 16, vocab: 48, seed: 12, dtype: "BF16" })
  fs.writeFileSync(pipeline, `version: 1
name: tiny-llama-merge
stages:
  a: { uses: load, with: { path: models/a } }
  b: { uses: load, with: { path: models/b/model.safetensors } }
  avg: { uses: merge/linear, with: { models: [a, b], weights: [0.25, 0.75] } }
  out: { uses: save, with: { model: avg, path: out/merged/, shard_size: 4kB } }
`)
})

const out = path.join(dir, "out", "merged")
const runArgs = (runs: string) => ["run", pipeline, "--runs-dir", path.join(dir, runs), "--no-cache"]

describe("crucible run → a Hugging Face folder", () => {
  it("plan lists every file of the folder with its size", () => {
    const r = crucible(["plan", pipeline])
    expect(r.code, r.stderr).toBe(0)
    for (const name of ["model-00001-of-", "model.safetensors.index.json", "config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "README.md"]) expect(r.stdout).toContain(name)
    expect(fs.existsSync(out)).toBe(false)
  })

  it("a SIGKILL during the save leaves no folder; the next run writes it whole and sweeps the temporary", async () => {
    fs.mkdirSync(path.dirname(out), { recursive: true })
    const child = startCrucible(runArgs("killed-runs"))
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal)))
    // The save assembles the folder in a temporary sibling: killed as soon as that appears.
    const watcher = fs.watch(path.dirname(out), (_event, name) => {
      if (name?.startsWith(".merged.") === true) child.kill("SIGKILL")
    })
    const signal = await exited
    watcher.close()
    expect(signal).toBe("SIGKILL")
    expect(fs.existsSync(out)).toBe(false)
    expect(fs.readdirSync(path.dirname(out)).filter((n) => n.startsWith(".merged."))).toHaveLength(1)

    const r = crucible(runArgs("runs"))
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    expect(fs.readdirSync(path.dirname(out))).toEqual(["merged"])
  })

  it("the folder: shards + index, the donor's config with torch_dtype bfloat16, its tokenizer byte for byte, a card; it reads back as the merge", async () => {
    const files = fs.readdirSync(out).sort()
    const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f))
    expect(shards.length).toBeGreaterThanOrEqual(2)
    expect(files).toEqual([...shards, "README.md", "config.json", "generation_config.json", "model.safetensors.index.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"].sort())
    const donor = path.join(dir, "models", "a")
    for (const name of ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"]) {
      expect(fs.readFileSync(path.join(out, name)).equals(fs.readFileSync(path.join(donor, name))), name).toBe(true)
    }
    const config = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"))
    expect(config).toMatchObject({ model_type: "llama", torch_dtype: "bfloat16", num_hidden_layers: 3, vocab_size: 48 })
    const card = fs.readFileSync(path.join(out, "README.md"), "utf8")
    expect(card).toMatch(/^---\nbase_model:\n- "a"\n- "b"\nlibrary_name: transformers\ntags:\n- merge\n- crucible\n---\n/)
    expect(card).toContain("pipeline `tiny-llama-merge` (stage `out`)")
    expect(card).toContain("`merge/linear`")

    const inspected = JSON.parse(crucible(["inspect", out, "--json"]).stdout)
    expect(inspected.format).toBe("safetensors-sharded")
    // 0.25·a + 0.75·b in float64, rounded to bfloat16 (8 significant bits): within half an ulp, 2⁻⁸ of the value.
    const merged = await readValues(out)
    expect([...merged.keys()].sort()).toEqual([...a.keys()].sort())
    for (const [name, t] of merged) {
      expect(t.dtype).toBe("BF16")
      const x = a.get(name)!.values
      const y = b.get(name)!.values
      t.values.forEach((v, i) => {
        const exact = 0.25 * x[i]! + 0.75 * y[i]!
        expect(Math.abs(v - exact)).toBeLessThanOrEqual(Math.abs(exact) * 2 ** -8)
      })
    }
  })

  it("a dead writer's half-assembled folder beside a stored output is swept when the save is reused", async () => {
    const runs = path.join(dir, "reuse-runs")
    expect(crucible(["run", pipeline, "--runs-dir", runs, "--quiet"]).code).toBe(0)
    const orphan = path.join(path.dirname(out), `.merged.${Owner.token(await deadOwner())}.0123456789ab.partial`)
    fs.mkdirSync(orphan)
    fs.writeFileSync(path.join(orphan, "model.safetensors"), "half")
    const r = crucible(["run", pipeline, "--runs-dir", runs, "--json"])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/"type":"stage-finished"[^\n]*"stage":"out"[^\n]*"cached":true/)
    expect(fs.readdirSync(path.dirname(out))).toEqual(["merged"])
  })
})

describe("crucible convert → a Hugging Face folder", () => {
  it("an output ending in / (or an existing folder) is a folder with the donor's config, tokenizer and card, as the convert stage writes", () => {
    const folder = path.join(dir, "converted")
    const r = crucible(["convert", path.join(dir, "models", "a"), `${folder}/`, "--dtype", "F16"])
    expect(r.code, r.stderr).toBe(0)
    expect(fs.statSync(folder).isDirectory()).toBe(true)
    for (const name of ["model.safetensors", "config.json", "tokenizer.json", "README.md"]) expect(fs.readdirSync(folder)).toContain(name)
    expect(JSON.parse(fs.readFileSync(path.join(folder, "config.json"), "utf8")).torch_dtype).toBe("float16")
    const again = crucible(["convert", path.join(dir, "models", "b"), folder])
    expect(again.code, again.stderr).toBe(0)
    expect(JSON.parse(fs.readFileSync(path.join(folder, "config.json"), "utf8")).torch_dtype).toBe("bfloat16")
  })
})
