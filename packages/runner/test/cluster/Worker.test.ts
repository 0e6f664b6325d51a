// A worker runs each unit as a local run of its sub-pipeline. The units of one cluster run share
// the run's memo: MNIST is parsed once per worker, not once per unit.
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { RunCache } from "@crucible/core"
import { describe, expect, it } from "vitest"
import * as Runner from "../../src/Runner.ts"
import * as ResultStore from "../../src/store/ResultStore.ts"
import { UnitTask } from "../../src/cluster/Protocol.ts"
import * as Units from "../../src/cluster/Units.ts"
import * as Worker from "../../src/cluster/Worker.ts"

const spanNames = (runDir: string): Array<string> => {
  const trace = JSON.parse(fs.readFileSync(path.join(runDir, "trace.json"), "utf8"))
  return trace.resourceSpans.flatMap((r: any) => r.scopeSpans.flatMap((s: any) => s.spans.map((sp: any) => sp.name as string)))
}

describe("a worker's units", () => {
  it("share their cluster run's memo (MNIST parsed once), report each stage; a stored result is found by the next run; a unit sent again gets the next folder", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-worker-"))
    fs.writeFileSync(path.join(dir, "p.yaml"), `version: 1
name: w
stages:
  t1: { uses: train, with: { arch: { type: mlp, layers: [784, 8, 10] }, data: mnist, split: fit, seed: 1, epochs: 1, batch_size: 500 } }
  t2: { uses: train, with: { arch: { type: mlp, layers: [784, 8, 10] }, data: mnist, split: fit, seed: 2, epochs: 1, batch_size: 500 } }
`)
    const loaded = await Effect.runPromise(Runner.load(path.join(dir, "p.yaml")))
    const units = Units.of(loaded.pipeline)
    const task = (runId: string, unit: string): UnitTask => {
      const u = units.find((x) => x.id === unit)!
      return Schema.decodeUnknownSync(UnitTask)({ runId, unit, ir: JSON.stringify(loaded.pipeline.ir), baseDir: dir, kindModules: [], stages: u.stages, runs: u.runs })
    }
    const options = { store: path.join(dir, "store"), id: "w-test", resources: { devices: ["cpu" as const], memoryBytes: 8e9, slots: 1 } }
    const memo = RunCache.make()
    const first = await Effect.runPromise(Worker.runUnit(task("r1", "t1"), options, memo))
    const second = await Effect.runPromise(Worker.runUnit(task("r1", "t2"), options, memo))
    expect(first).toMatchObject({ unit: "t1", status: "succeeded", worker: "w-test", stages: [{ id: "t1", kind: "train", status: "succeeded", cached: false }] })
    expect(second).toMatchObject({ unit: "t2", status: "succeeded", stages: [{ id: "t2", status: "succeeded" }] })
    expect(first.runDir).toBe(path.join(dir, "store", "runs", "r1", "t1"))
    expect(spanNames(first.runDir)).toContain("Mnist.load")
    expect(spanNames(second.runDir)).not.toContain("Mnist.load")
    // Another cluster run finds the unit's result stored by key: not trained again.
    const other = await Effect.runPromise(Worker.runUnit(task("r2", "t2"), options, RunCache.make()))
    expect(other).toMatchObject({ status: "succeeded", stages: [{ id: "t2", cached: true }] })
    // A unit sent again to a run folder that exists (its first worker died) gets the next folder.
    const again = await Effect.runPromise(Worker.runUnit(task("r1", "t1"), options, memo))
    expect(again.runDir).toBe(path.join(dir, "store", "runs", "r1", "t1-2"))
    expect(again.stages[0]).toMatchObject({ cached: true })
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it("take the results store's implementation from their options (the store is an interface)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-worker-store-"))
    fs.writeFileSync(path.join(dir, "p.yaml"), `version: 1
name: s
stages:
  a:   { uses: load, with: { path: ${path.resolve("packages/core/fixtures/torch/merge_a.pt")} } }
  b:   { uses: load, with: { path: ${path.resolve("packages/core/fixtures/torch/merge_b.pt")} } }
  avg: { uses: merge/linear, with: { models: [a, b] } }
  out: { uses: save, with: { model: avg, path: out.safetensors } }
`)
    const loaded = await Effect.runPromise(Runner.load(path.join(dir, "p.yaml")))
    const unit = Units.of(loaded.pipeline).find((u) => u.id === "out")!
    const published: Array<string> = []
    // A store that records what goes through it around the POSIX one, as an object store's client would sit.
    const recording: NonNullable<Runner.RunOptions["resultStore"]> = (root) =>
      Effect.map(ResultStore.make(root), (inner): ResultStore.ResultStore => ({
        ...inner,
        publish: (producer, value, runDir) => Effect.tap(inner.publish(producer, value, runDir), () => Effect.sync(() => published.push(producer.stage)))
      }))
    const options = { store: path.join(dir, "store"), id: "w", resources: { devices: ["cpu" as const], memoryBytes: 8e9, slots: 1 }, resultStore: recording }
    const task = Schema.decodeUnknownSync(UnitTask)({ runId: "r", unit: "out", ir: JSON.stringify(loaded.pipeline.ir), baseDir: dir, kindModules: [], stages: unit.stages, runs: unit.runs })
    const report = await Effect.runPromise(Worker.runUnit(task, options))
    expect(report.status).toBe("succeeded")
    expect(published).toEqual(["out"])
    expect(fs.existsSync(path.join(dir, "out.safetensors"))).toBe(true)
    fs.rmSync(dir, { recursive: true, force: true })
  })
})
