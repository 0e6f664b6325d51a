// examples/progressive as an end-to-end test: iterative fusion of four fine-tunes, evaluated against its inputs.
import { describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))
const cli = path.resolve(here, "../../packages/runner/src/cli/main.ts")
const pct = (x: number) => `${(100 * x).toFixed(2)}%`

describe("examples/progressive", () => {
  it("iterative fusion records its path and ends at least as good on validation as its first model (test accuracies are reported)", () => {
    const runs = fs.mkdtempSync(path.join(os.tmpdir(), "progressive-"))
    const r = spawnSync(process.execPath, [cli, "run", path.join(here, "pipeline.yaml"), "--runs-dir", runs, "--run-id", "test", "--quiet"], { encoding: "utf8", timeout: 300_000 })
    expect(r.stderr).toBe("")
    expect(r.status).toBe(0)
    const manifest = JSON.parse(fs.readFileSync(path.join(runs, "test", "manifest.json"), "utf8"))
    const accuracy = (id: string): number => manifest.stages.find((s: { id: string }) => s.id === id).output.values.accuracy
    const inputs = [0, 1, 2, 3].map((i) => accuracy(`test_ft${i}`))
    const fused = accuracy("test_fused")
    const record = JSON.parse(JSON.parse(spawnSync(process.execPath, [cli, "inspect", path.join(here, "out", "iterative-fusion.safetensors"), "--json"], { encoding: "utf8" }).stdout).metadata["crucible.progressive"])
    console.log(`base ${pct(accuracy("test_base"))}; inputs ${inputs.map(pct).join(" / ")}; iterative fusion ${pct(fused)} (kept ${record.kept.map((i: number) => `ft${i}`).join(", ")})`)
    expect(record.path).toHaveLength(4)
    expect(record.kept[0]).toBe(0)
    const scores = record.path.map((s: { accumulatorScore: number }) => s.accumulatorScore)
    for (let i = 1; i < scores.length; i++) expect(scores[i]).toBeGreaterThanOrEqual(scores[i - 1])
    // The recorded path agrees with independent evaluations on validation: the first model's, and the result's.
    const valLoss = (id: string): number => manifest.stages.find((s: { id: string }) => s.id === id).output.values.loss
    expect(-record.path[0].score).toBeCloseTo(valLoss("val_ft0"), 6)
    expect(-scores.at(-1)).toBeCloseTo(valLoss("val_fused"), 6)
    expect(valLoss("val_fused")).toBeLessThanOrEqual(valLoss("val_ft0"))
    expect(fused).toBeGreaterThan(0.9)
  })
})
