// examples/lm-merge as an end-to-end test: a tiny LLaMA pre-trained on Brown, four genre specialists, four
// merges of them, every model evaluated per genre group on the test documents, the merge of lowest validation
// perplexity chosen (lm/select), its generation, its HF folder.
//
// The pipeline as committed trains for minutes (README: 5.5 min on 2 shared cores); the test runs the same pipeline
// with fewer steps (REDUCED below: every other param, stage and file as committed), so the suite stays within
// CI's budget, in a copy of the example's folder (its out/ is not touched).
import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { inspect, runPipeline, stageValues } from "../cli.ts"

const here = path.dirname(fileURLToPath(import.meta.url))

const specialists = ["press", "fiction", "learned", "popular"] as const
const merges = ["linear", "task_arithmetic", "ties", "dare_ties"] as const

/** The pipeline's params that make it long, and what the test runs instead (each must occur as counted). */
const REDUCED: ReadonlyArray<readonly [from: string, to: string, count: number]> = [
  ["batch_size: 16, steps: 300", "batch_size: 16, steps: 60", 1],
  ["batch_size: 8, steps: 100", "batch_size: 8, steps: 20", 4],
  ["max_blocks: 32", "max_blocks: 8", 13]
]

/** A copy of the example with the reduced steps: `pipeline.yaml` and `tiny-llama/` in a fresh folder. */
const reducedCopy = (): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lm-merge-"))
  let yaml = fs.readFileSync(path.join(here, "pipeline.yaml"), "utf8")
  for (const [from, to, count] of REDUCED) {
    expect(yaml.split(from).length - 1, from).toBe(count)
    yaml = yaml.replaceAll(from, to)
  }
  fs.writeFileSync(path.join(dir, "pipeline.yaml"), yaml)
  fs.cpSync(path.join(here, "tiny-llama"), path.join(dir, "tiny-llama"), { recursive: true })
  return dir
}

describe("examples/lm-merge", () => {
  it("each specialist beats the base on its own genres, each merge beats the base on every genre, and the merge of lowest validation perplexity is chosen", () => {
    const dir = reducedCopy()
    try {
      const r = runPipeline(dir)
      expect(r.stderr).toBe("")
      expect(r.status).toBe(0)
      const values = stageValues(r)
      const ppl = (model: string, group: string): number => values(`eval_${model}`).groups[group].perplexity
      const row = (model: string) => `${model.padEnd(16)}${specialists.map((g) => ppl(model, g).toFixed(1).padStart(9)).join("")}${values(`eval_${model}`).perplexity.toFixed(1).padStart(9)}`
      console.log([`${"perplexity".padEnd(16)}${[...specialists, "all"].map((g) => g.padStart(9)).join("")}`, ...["base", ...specialists, ...merges].map(row)].join("\n"))

      for (const s of specialists) expect(ppl(s, s), `${s} on ${s}`).toBeLessThan(ppl("base", s))
      for (const m of merges) for (const g of specialists) expect(ppl(m, g), `${m} on ${g}`).toBeLessThan(ppl("base", g))

      // `choose` (lm/select) takes the merge of lowest validation perplexity; the saved model's metadata holds its ranking.
      const val = merges.map((m) => values(`val_${m}`).perplexity as number)
      const argmin = val.indexOf(Math.min(...val))
      const folder = path.join(dir, "out", "tiny-llama-merged")
      const saved = inspect(folder)
      const ranking = JSON.parse(saved.metadata["crucible.lm.selected"])
      console.log(`choose: ${merges[ranking.chosen]} (validation perplexity ${merges.map((m, i) => `${m} ${val[i]!.toFixed(1)}`).join(", ")})`)
      expect(ranking.metric).toBe("perplexity")
      expect(ranking.candidates.map((c: { value: number }) => c.value)).toEqual(val)
      expect(ranking.chosen).toBe(argmin)

      // The chosen merge's continuations, and its Hugging Face folder: config.json, the tokenizer, weights that load.
      const samples = values("generate").samples as Array<{ prompt: string; continuation: string }>
      expect(samples.map((s) => s.prompt)).toEqual(["The jury said", "She opened the door and"])
      for (const s of samples) expect(s.continuation.trim().length).toBeGreaterThan(0)
      const config = JSON.parse(fs.readFileSync(path.join(folder, "config.json"), "utf8"))
      expect(config.model_type).toBe("llama")
      expect(fs.existsSync(path.join(folder, "tokenizer.json"))).toBe(true)
      const tensors: Array<{ name: string }> = saved.tensors
      expect(tensors.map((t) => t.name)).toContain("model.embed_tokens.weight")
      // The config folder holds only the model's files (the tokenizer's training script lives beside it): none else is copied.
      expect(fs.readdirSync(folder).sort()).toEqual(["README.md", "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
