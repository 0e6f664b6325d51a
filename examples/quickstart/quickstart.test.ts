import { describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { cli, inspect } from "../cli.ts"

const here = path.dirname(fileURLToPath(import.meta.url))

describe("examples/quickstart", () => {
  it("averages the two PyTorch checkpoints as PyTorch does", () => {
    const runs = fs.mkdtempSync(path.join(os.tmpdir(), "quickstart-"))
    const r = spawnSync(process.execPath, [cli, "run", path.join(here, "pipeline.yaml"), "--runs-dir", runs, "--quiet"], { encoding: "utf8" })
    expect(r.stderr).toBe("")
    expect(r.status).toBe(0)
    const info = inspect(path.join(here, "out/merged-bf16.safetensors"))
    expect(info.tensors.every((t: { dtype: string }) => t.dtype === "BF16")).toBe(true)
    const expected = JSON.parse(fs.readFileSync(path.resolve(here, "../../packages/core/fixtures/merge_expected.json"), "utf8"))
    expect(info.tensors.map((t: { name: string }) => t.name).sort()).toEqual(Object.keys(expected.tensors).sort())
  })
})
