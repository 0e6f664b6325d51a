import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { inspect, readTensors, runPipeline } from "../cli.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const output = path.join(here, "out/half.safetensors")

describe("examples/typescript", () => {
  it("runs the TypeScript pipeline and its YAML twin (kinds: [./kinds.ts]) to the same bytes: half of PyTorch's 0.3/0.7 average", async () => {
    fs.rmSync(output, { force: true })
    const ts = runPipeline(here, "pipeline.ts")
    expect(ts.stderr).toBe("")
    expect(ts.status).toBe(0)
    const fromTs = fs.readFileSync(output)
    fs.rmSync(output)
    const yaml = runPipeline(here, "pipeline.yaml")
    expect(yaml.stderr).toBe("")
    expect(yaml.status).toBe(0)
    expect(fs.readFileSync(output).equals(fromTs)).toBe(true)

    // PyTorch's own 0.3·a + 0.7·b (packages/core/fixtures/make_fixtures.py), halved by the user's kind.
    const expected = JSON.parse(fs.readFileSync(path.resolve(here, "../../packages/core/fixtures/merge_expected.json"), "utf8")) as { tensors: Record<string, { values_f32: Array<number> }> }
    const merged = await readTensors(output)
    expect([...merged.keys()].sort()).toEqual(Object.keys(expected.tensors).sort())
    for (const [name, { values_f32 }] of Object.entries(expected.tensors)) {
      const got = merged.get(name)!
      values_f32.forEach((v, i) => expect(Math.abs(got[i]! - v / 2)).toBeLessThanOrEqual(1e-7))
    }
    expect(inspect(output).tensors.every((t: { dtype: string }) => t.dtype === "F32")).toBe(true)
    // Both runs left a trace with the user's stage in it.
    for (const r of [ts, yaml]) expect(fs.readFileSync(path.join(r.runDir, "trace.json"), "utf8")).toContain("user/scale")
  })
})
