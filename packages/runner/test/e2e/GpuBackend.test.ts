// `crucible run --backend webgpu` end to end: Dawn on lavapipe (CI installs it; elsewhere skipped
// with the reason when it is missing), against the same pipeline on `--backend cpu`.
import { beforeEach, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { crucibleAsync } from "./cli.ts"
import { skipWithoutGpu } from "../support/Gpu.ts"
import { attributeValues } from "../support/OtlpDecode.ts"
import { readModel } from "./models.ts"
import { tempDir } from "../support/TempDir.ts"

beforeEach(skipWithoutGpu)

const pipeline = `version: 1
name: gpu-train
stages:
  m:
    uses: train
    with: { arch: { type: mlp, layers: [4, 8, 3] }, data: iris, seed: 3, epochs: 2, batch_size: 50 }
  out: { uses: save, with: { model: m, path: out.safetensors } }
`

describe("crucible run --backend webgpu", () => {
  it("trains on the GPU, saves the cpu backend's weights (within float32 rounding), traces the backend and exits by itself", async () => {
    const results = new Map<string, Awaited<ReturnType<typeof readModel>>>()
    for (const backend of ["webgpu", "cpu"]) {
      const dir = tempDir(`gpu-e2e-${backend}-`)
      fs.writeFileSync(path.join(dir, "p.yaml"), pipeline)
      // crucibleAsync resolves when the child exits: a device keeping Node alive would time the test out
      const run = await crucibleAsync(["run", path.join(dir, "p.yaml"), "--runs-dir", path.join(dir, "runs"), "--run-id", "r", "--backend", backend, "--quiet"])
      expect(run.code, run.stderr).toBe(0)
      results.set(backend, await readModel(path.join(dir, "out.safetensors")))
      expect(attributeValues(path.join(dir, "runs", "r"), "crucible.backend")).toContain(backend)
    }
    const gpu = results.get("webgpu")!
    const cpu = results.get("cpu")!
    expect([...gpu.keys()].sort()).toEqual([...cpu.keys()].sort())
    for (const [name, { dtype, values }] of cpu) {
      expect(dtype).toBe("F32")
      expect(gpu.get(name)!.dtype).toBe("F32")
      const other = gpu.get(name)!.values
      // Float32 on both, differing only in summation order over 4-8 inputs and 50-sample batches for
      // 6 steps: ~1e-7 apart; 1e-5 on weights of magnitude ~0.1-1 is ample margin yet far below
      // what a wrong kernel would move (≥ 1e-3).
      for (let i = 0; i < values.length; i++) expect(Math.abs(values[i]! - other[i]!), `${name}[${i}]`).toBeLessThan(1e-5)
    }
  }, 120_000)
})
