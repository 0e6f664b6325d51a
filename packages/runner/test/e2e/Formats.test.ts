import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { crucible } from "./cli.ts"
import { readModel } from "./models.ts"

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../core/fixtures")
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "crucible-formats-"))

describe("real PyTorch checkpoints through the CLI", () => {
  it("merges two torch.save checkpoints and matches the values PyTorch computed", async () => {
    const dir = tmp()
    fs.writeFileSync(path.join(dir, "p.yaml"), `version: 1
name: torch-merge
stages:
  a: { uses: load, with: { path: ${path.join(fixtures, "torch/merge_a.pt")} } }
  b: { uses: load, with: { path: ${path.join(fixtures, "torch/merge_b.pt")} } }
  avg: { uses: merge/linear, with: { models: [a, b], weights: [0.3, 0.7] } }
  out: { uses: save, with: { model: avg, path: merged.safetensors } }
`)
    const r = crucible(["run", path.join(dir, "p.yaml"), "--runs-dir", path.join(dir, "runs")])
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    const expected = JSON.parse(fs.readFileSync(path.join(fixtures, "merge_expected.json"), "utf8")) as {
      tensors: Record<string, { dtype: string; shape: Array<number>; values_f32?: Array<number>; values?: Array<number> }>
    }
    const merged = await readModel(path.join(dir, "merged.safetensors"))
    expect([...merged.keys()].sort()).toEqual(Object.keys(expected.tensors).sort())
    for (const [name, e] of Object.entries(expected.tensors)) {
      const got = merged.get(name)!
      expect(got.shape).toEqual(e.shape)
      const values = e.values_f32 ?? e.values ?? []
      values.forEach((v, i) => expect(Math.abs(got.values[i]! - v)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(v))))
    }
  })

  it("inspects a .pt checkpoint and a Hugging Face folder, and converts .pt to bf16 and to sharded safetensors", async () => {
    const pt = crucible(["inspect", path.join(fixtures, "torch/merge_a.pt"), "--json"])
    expect(pt.code).toBe(0)
    const info = JSON.parse(pt.stdout)
    expect(info.format).toBe("pytorch")
    expect(info.tensors.length).toBeGreaterThan(0)
    const hf = crucible(["inspect", path.join(fixtures, "safetensors/hf-sharded")])
    expect(hf.code).toBe(0)
    expect(hf.stdout).toMatch(/safetensors-sharded/)

    const dir = tmp()
    const out = path.join(dir, "converted.safetensors")
    const c = crucible(["convert", path.join(fixtures, "torch/merge_a.pt"), out, "--dtype", "bf16"])
    expect(c.stderr).toBe("")
    expect(c.code).toBe(0)
    const converted = JSON.parse(crucible(["inspect", out, "--json"]).stdout)
    expect(converted.tensors.map((t: { name: string }) => t.name).sort()).toEqual(info.tensors.map((t: { name: string }) => t.name).sort())
    const floats = converted.tensors.filter((t: { dtype: string }) => t.dtype !== "I64")
    expect(floats.every((t: { dtype: string }) => t.dtype === "BF16")).toBe(true)

    const sharded = path.join(dir, "sharded", "model.safetensors")
    const s = crucible(["convert", path.join(fixtures, "torch/merge_a.pt"), sharded, "--shard-size", "300", "--json"])
    expect(s.code).toBe(0)
    const written = JSON.parse(s.stdout).files.map((f: { path: string }) => path.basename(f.path))
    expect(written.length).toBeGreaterThan(2)
    expect(written).toContain("model.safetensors.index.json")
    const back = JSON.parse(crucible(["inspect", path.join(dir, "sharded"), "--json"]).stdout)
    expect(back.format).toBe("safetensors-sharded")
    expect(back.totalBytes).toBe(info.totalBytes)

    const bad = crucible(["convert", path.join(fixtures, "torch/evil_os_system.pt"), path.join(dir, "evil.safetensors")])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain("os")
    expect(fs.existsSync(path.join(dir, "evil.safetensors"))).toBe(false)
  })
})
