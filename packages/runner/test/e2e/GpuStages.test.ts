// `crucible run --backend webgpu` over the model stages end to end — train → align (activation
// matching) → merge → evaluate → ensemble → evaluate — on Dawn over lavapipe (CI installs it;
// elsewhere skipped with the reason when it is missing), against the same pipeline on `--backend cpu`.
import { beforeEach, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { crucibleAsync } from "./cli.ts"
import { skipWithoutGpu } from "../support/Gpu.ts"
import { attributeValues } from "../support/OtlpDecode.ts"
import { tempDir } from "../support/TempDir.ts"

beforeEach(skipWithoutGpu)

const mlp = "{ type: mlp, layers: [4, 16, 3] }"
const pipeline = `version: 1
name: gpu-stages
stages:
  a: { uses: train, with: { arch: ${mlp}, data: iris, seed: 1, epochs: 3, batch_size: 30, optimizer: { type: adam, lr: 0.02 } } }
  b: { uses: train, with: { arch: ${mlp}, data: iris, seed: 2, epochs: 3, batch_size: 30, optimizer: { type: adam, lr: 0.02 } } }
  b_aligned: { uses: align/activation-matching, with: { reference: a, model: b, data: iris, samples: 150 } }
  merged: { uses: merge/linear, with: { models: [a, b_aligned] } }
  merged_score: { uses: evaluate, with: { model: merged, data: iris, split: test } }
  both: { uses: ensemble, with: { models: [a, b], mode: mean-probs } }
  both_score: { uses: evaluate, with: { model: both, data: iris, split: test } }
`

interface StageRecord {
  readonly id: string
  readonly status: string
  readonly cached?: boolean
  readonly output?: { readonly type: string; readonly values?: Record<string, unknown> }
}

describe("crucible run --backend webgpu over the model stages", () => {
  it("train, align, merge, evaluate and ensemble exit 0 with the cpu run's metrics (within float32 rounding)", async () => {
    const manifests = new Map<string, ReadonlyArray<StageRecord>>()
    for (const backend of ["webgpu", "cpu"]) {
      const dir = tempDir(`gpu-stages-${backend}-`)
      fs.writeFileSync(path.join(dir, "p.yaml"), pipeline)
      const run = await crucibleAsync(["run", path.join(dir, "p.yaml"), "--runs-dir", path.join(dir, "runs"), "--run-id", "r", "--backend", backend, "--quiet"])
      expect(run.code, run.stderr).toBe(0)
      const stages = JSON.parse(fs.readFileSync(path.join(dir, "runs", "r", "manifest.json"), "utf8")).stages as ReadonlyArray<StageRecord>
      // every stage computed here (none reused from another run)
      for (const s of stages) {
        expect(s.status, s.id).toBe("succeeded")
        expect(s.cached, s.id).toBeUndefined()
      }
      // the forward passes (activation matching, evaluation) ran on this backend and no other
      expect(new Set(attributeValues(path.join(dir, "runs", "r"), "crucible.backend"))).toEqual(new Set([backend]))
      manifests.set(backend, stages)
    }
    for (const id of ["merged_score", "both_score"]) {
      const [gpu, cpu] = ["webgpu", "cpu"].map((b) => manifests.get(b)!.find((s) => s.id === id)!.output!.values!)
      // Float32 on both backends, differing in summation order only (≤ 16-term dot products, 50-150
      // sample means, 3 epochs of 4 steps): measured ~1e-7 apart. 1e-5 relative on the loss is ample
      // margin yet far below what a wrong kernel or a lost read would move it (≥ 1e-3); accuracy is
      // a count of argmaxes and must be equal.
      expect(gpu!.accuracy, id).toBe(cpu!.accuracy)
      expect(gpu!.samples, id).toBe(cpu!.samples)
      const [g, c] = [gpu!.loss as number, cpu!.loss as number]
      console.log(`${id}: webgpu loss ${g} cpu ${c} (rel ${(Math.abs(g - c) / c).toExponential(2)}), accuracy ${gpu!.accuracy}`)
      expect(Math.abs(g - c) / c, id).toBeLessThan(1e-5)
    }
  }, 180_000)
})
