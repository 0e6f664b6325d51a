import { describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { cli, inspect } from "../cli.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const output = path.join(here, "out/half.safetensors")

const run = (pipeline: string, runs: string) =>
  spawnSync(process.execPath, [cli, "run", path.join(here, pipeline), "--runs-dir", runs, "--run-id", pipeline, "--quiet"], { encoding: "utf8" })

/** The tensors of a safetensors file as float32 values (this example writes F32). */
const readF32 = (file: string): Map<string, Float32Array> => {
  const bytes = fs.readFileSync(file)
  const headerLength = Number(bytes.readBigUInt64LE(0))
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString("utf8")) as Record<string, { data_offsets: [number, number] }>
  const data = bytes.subarray(8 + headerLength)
  return new Map(Object.entries(header).filter(([name]) => name !== "__metadata__").map(([name, t]) => {
    const slice = data.subarray(t.data_offsets[0], t.data_offsets[1])
    return [name, new Float32Array(slice.buffer.slice(slice.byteOffset, slice.byteOffset + slice.byteLength))]
  }))
}

describe("examples/typescript", () => {
  it("runs the TypeScript pipeline and its YAML twin (kinds: [./kinds.ts]) to the same bytes: half of PyTorch's 0.3/0.7 average", () => {
    const runs = fs.mkdtempSync(path.join(os.tmpdir(), "typescript-"))
    fs.rmSync(output, { force: true })
    const ts = run("pipeline.ts", runs)
    expect(ts.stderr).toBe("")
    expect(ts.status).toBe(0)
    const fromTs = fs.readFileSync(output)
    fs.rmSync(output)
    const yaml = run("pipeline.yaml", runs)
    expect(yaml.stderr).toBe("")
    expect(yaml.status).toBe(0)
    expect(fs.readFileSync(output).equals(fromTs)).toBe(true)

    // PyTorch's own 0.3·a + 0.7·b (packages/core/fixtures/make_fixtures.py), halved by the user's kind.
    const expected = JSON.parse(fs.readFileSync(path.resolve(here, "../../packages/core/fixtures/merge_expected.json"), "utf8")) as { tensors: Record<string, { values_f32: Array<number> }> }
    const merged = readF32(output)
    expect([...merged.keys()].sort()).toEqual(Object.keys(expected.tensors).sort())
    for (const [name, { values_f32 }] of Object.entries(expected.tensors)) {
      const got = merged.get(name)!
      values_f32.forEach((v, i) => expect(Math.abs(got[i]! - v / 2)).toBeLessThanOrEqual(1e-7))
    }
    expect(inspect(output).tensors.every((t: { dtype: string }) => t.dtype === "F32")).toBe(true)
    // Both runs left a trace with the user's stage in it.
    for (const id of ["pipeline.ts", "pipeline.yaml"]) expect(fs.readFileSync(path.join(runs, id, "trace.json"), "utf8")).toContain("user/scale")
  })
})
