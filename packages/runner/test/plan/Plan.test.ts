// `crucible plan` against a real run through the bundled CLI: the bytes the plan says each file
// will give are the bytes the run's readers counted (manifest `inputs[].bytesRead`), the files it
// says will be written are the files on disk, its memory figures follow their documented
// formulas, and what would fail fails the plan (exit 2) while what cannot be planned says so.
import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { crucible } from "../e2e/cli.ts"
import { writeModel } from "../e2e/models.ts"

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "crucible-plan-"))
const repo = path.resolve(import.meta.dirname, "../../../..")

interface PlanJson {
  readonly stages: ReadonlyArray<{ readonly id: string; readonly status: string; readonly reason?: string; readonly error?: string; readonly peakMemoryBytes?: number }>
  readonly reads: { readonly files: ReadonlyArray<{ readonly path: string; readonly bytes: number; readonly headerBytes: number; readonly dataBytes: number; readonly exact: boolean }>; readonly bytes: number; readonly exact: boolean }
  readonly writes: { readonly files: ReadonlyArray<{ readonly path: string; readonly bytes: number; readonly stage: string }>; readonly bytes: number }
  readonly peakMemoryBytes: number
  readonly pulls: ReadonlyArray<{ readonly stage: string; readonly bytes: number; readonly stages: ReadonlyArray<string> }>
  readonly problems: ReadonlyArray<string>
}

/** `plan --json`: stdout must be JSON alone (logs go to stderr). */
const plan = (pipeline: string): { readonly code: number | null; readonly json: PlanJson; readonly stderr: string } => {
  const r = crucible(["plan", pipeline, "--json"])
  return { code: r.code, json: JSON.parse(r.stdout) as PlanJson, stderr: r.stderr }
}

/** Runs the pipeline; the manifest's per-file counts of what the readers read. */
const run = (pipeline: string, dir: string) => {
  const r = crucible(["run", pipeline, "--runs-dir", path.join(dir, "runs"), "--run-id", "r", "--quiet"])
  expect(r.stderr).toBe("")
  expect(r.code).toBe(0)
  return JSON.parse(fs.readFileSync(path.join(dir, "runs/r/manifest.json"), "utf8")) as {
    readonly inputs: ReadonlyArray<{ readonly path: string; readonly bytesRead: number }>
    readonly outputs: ReadonlyArray<{ readonly path: string; readonly bytes: number }>
  }
}

const byPath = <T extends { readonly path: string }>(rows: ReadonlyArray<T>, value: (row: T) => number) => Object.fromEntries(rows.map((r) => [r.path, value(r)]))

/** Plans, runs, and checks reads and writes of the plan against the run. */
const planAgainstRun = (pipeline: string, dir: string) => {
  const planned = plan(pipeline)
  expect(planned.code).toBe(0)
  expect(planned.json.problems).toEqual([])
  const manifest = run(pipeline, dir)
  // Every file the plan reads is one the run read, byte for byte, and the reverse.
  expect(byPath(planned.json.reads.files, (f) => f.bytes)).toEqual(byPath(manifest.inputs, (f) => f.bytesRead))
  expect(planned.json.reads.exact).toBe(true)
  // Every file written is planned with its size on disk.
  const written = planned.json.writes.files.map((f) => f.path)
  expect(byPath(planned.json.writes.files, (f) => f.bytes)).toEqual(Object.fromEntries(written.map((p) => [p, fs.statSync(p).size])))
  expect(byPath(planned.json.writes.files, (f) => f.bytes)).toEqual(byPath(manifest.outputs, (f) => f.bytes))
  return { planned: planned.json, manifest }
}

const specs = [
  { name: "embed.weight", shape: [50, 16] },
  { name: "layers.0.weight", shape: [32, 16] },
  { name: "layers.0.bias", shape: [32], dtype: "F16" as const },
  { name: "extra", shape: [7] },
  { name: "scalar", shape: [] }
]

describe("crucible plan is exact", () => {
  it("single files: reads per file (headers + the data each merge uses, drops and copies counted right) and writes are the run's", async () => {
    const dir = tmp()
    await writeModel(path.join(dir, "a.safetensors"), specs, 1)
    await writeModel(path.join(dir, "b.safetensors"), specs, 2)
    // c lacks "extra": TIES with on_missing: skip drops it, so nobody reads it from a or b.
    await writeModel(path.join(dir, "c.safetensors"), specs.filter((s) => s.name !== "extra"), 3)
    const pipeline = path.join(dir, "p.yaml")
    fs.writeFileSync(pipeline, `version: 1
name: exact-single
stages:
  a: { uses: load, with: { path: a.safetensors } }
  b: { uses: load, with: { path: b.safetensors } }
  c: { uses: load, with: { path: c.safetensors } }
  avg: { uses: merge/linear, with: { models: [a, b] } }
  ties: { uses: merge/ties, with: { base: a, models: [b, c], density: 0.5, on_missing: skip } }
  out: { uses: save, with: { model: avg, path: out/avg.safetensors } }
  out_ties: { uses: save, with: { model: ties, path: out/ties.safetensors, dtype: bf16 } }
  out_tfjs: { uses: save, with: { model: c, path: out/tfjs/model.json, shard_size: 2000 } }
`)
    const { planned } = planAgainstRun(pipeline, dir)
    const file = (name: string) => planned.reads.files.find((f) => f.path === path.join(dir, name))!
    // a is read by both merges (the linear average and the TIES base); c by TIES, without "extra", and whole by the TF.js save.
    const tensorBytes = (names: ReadonlyArray<string>) => specs.filter((s) => names.includes(s.name)).reduce((n, s) => n + s.shape.reduce((a, d) => a * d, 1) * (s.dtype === "F16" ? 2 : 4), 0)
    const all = specs.map((s) => s.name)
    const withoutExtra = all.filter((n) => n !== "extra")
    expect(file("a.safetensors").dataBytes).toBe(tensorBytes(all) + tensorBytes(withoutExtra))
    expect(file("b.safetensors").dataBytes).toBe(tensorBytes(all) + tensorBytes(withoutExtra))
    expect(file("c.safetensors").dataBytes).toBe(2 * tensorBytes(withoutExtra))
    expect(planned.writes.files.map((f) => path.relative(dir, f.path))).toEqual([
      "out/tfjs/model.json", "out/tfjs/group1-shard1of3.bin", "out/tfjs/group1-shard2of3.bin", "out/tfjs/group1-shard3of3.bin", "out/avg.safetensors", "out/ties.safetensors"
    ])
  })

  it("sharded: reads per shard and index of a sharded input, every shard and the index written", async () => {
    const dir = tmp()
    // One tensor larger than a writer chunk (1M elements): the merge streams it in chunks, reading ahead.
    const large = [...specs, { name: "wide.weight", shape: [1200, 1000] }]
    await writeModel(path.join(dir, "a.safetensors"), large, 1)
    await writeModel(path.join(dir, "b.safetensors"), large, 2)
    // The input is sharded by crucible's own save (shard_size), as the run will write the output.
    fs.writeFileSync(path.join(dir, "shard.yaml"), `version: 1
name: shard
stages:
  a: { uses: load, with: { path: a.safetensors } }
  out: { uses: save, with: { model: a, path: sharded/a.safetensors, shard_size: 1500 } }
`)
    const sharding = planAgainstRun(path.join(dir, "shard.yaml"), fs.mkdtempSync(path.join(dir, "runs-")))
    expect(sharding.planned.writes.files.map((f) => path.basename(f.path))).toEqual([
      "a-00001-of-00004.safetensors", "a-00002-of-00004.safetensors", "a-00003-of-00004.safetensors", "a-00004-of-00004.safetensors", "a.safetensors.index.json"
    ])
    const pipeline = path.join(dir, "p.yaml")
    fs.writeFileSync(pipeline, `version: 1
name: exact-sharded
stages:
  a: { uses: load, with: { path: sharded/a.safetensors.index.json } }
  b: { uses: load, with: { path: b.safetensors } }
  avg: { uses: merge/linear, with: { models: [a, b], weights: [0.25, 0.75] } }
  out: { uses: save, with: { model: avg, path: out/avg.safetensors, shard_size: 2000 } }
`)
    const { planned } = planAgainstRun(pipeline, dir)
    const reads = byPath(planned.reads.files, (f) => f.dataBytes)
    // Each shard gives exactly the bytes of its own tensors; the index gives its header only.
    expect(Object.keys(reads).map((p) => path.relative(dir, p)).sort()).toEqual([
      "b.safetensors", "sharded/a-00001-of-00004.safetensors", "sharded/a-00002-of-00004.safetensors", "sharded/a-00003-of-00004.safetensors", "sharded/a-00004-of-00004.safetensors",
      "sharded/a.safetensors.index.json"
    ])
    expect(reads[path.join(dir, "sharded/a.safetensors.index.json")]).toBe(0)
    expect(reads[path.join(dir, "sharded/a-00004-of-00004.safetensors")]).toBe(1200 * 1000 * 4)
    expect(planned.writes.files.map((f) => path.basename(f.path))).toEqual(["avg-00001-of-00004.safetensors", "avg-00002-of-00004.safetensors", "avg-00003-of-00004.safetensors", "avg-00004-of-00004.safetensors", "avg.safetensors.index.json"])
  })

  it("peak memory per stage and for the run follows the documented formulas", async () => {
    const dir = tmp()
    await writeModel(path.join(dir, "a.safetensors"), specs, 1)
    await writeModel(path.join(dir, "b.safetensors"), specs, 2)
    await writeModel(path.join(dir, "c.safetensors"), specs, 3)
    const pipeline = path.join(dir, "p.yaml")
    fs.writeFileSync(pipeline, `version: 1
name: memory
stages:
  a: { uses: load, with: { path: a.safetensors } }
  b: { uses: load, with: { path: b.safetensors } }
  c: { uses: load, with: { path: c.safetensors } }
  avg: { uses: merge/linear, with: { models: [a, b, c] } }
  ties: { uses: merge/ties, with: { base: a, models: [b, avg], density: 0.5 } }
  out: { uses: save, with: { model: ties, path: out/ties.safetensors } }
  out_avg: { uses: save, with: { model: avg, path: out/avg.safetensors } }
`)
    const { json, code } = plan(pipeline)
    expect(code).toBe(0)
    const peak = (id: string) => json.stages.find((s) => s.id === id)!.peakMemoryBytes
    const largest = 50 * 16
    expect(peak("a")).toBe(0)
    // merge/linear: (4 sets (one summed, three read ahead) · inputs + 1) · 4 bytes per element of a writer chunk (the whole tensor here).
    expect(peak("avg")).toBe((4 * 3 + 1) * 4 * largest)
    // TIES: every input and the output as float32: (base + 2 models + output) · 4 · elements.
    expect(peak("ties")).toBe(4 * 4 * largest)
    // A safetensors writer: three chunk buffers of the largest chunk.
    expect(peak("out")).toBe(3 * 4 * largest)
    // out pulls through ties and avg at once; out_avg through avg; two writers at once.
    const pulls = Object.fromEntries(json.pulls.map((p) => [p.stage, p]))
    expect(pulls.out!.stages).toEqual(["out", "ties", "avg"])
    expect(pulls.out!.bytes).toBe(peak("out")! + peak("ties")! + peak("avg")!)
    expect(pulls.out_avg!.bytes).toBe(peak("out_avg")! + peak("avg")!)
    expect(json.peakMemoryBytes).toBe(pulls.out!.bytes + pulls.out_avg!.bytes)
    const text = crucible(["plan", pipeline])
    expect(text.stdout).toMatch(/peak memory: [\d.]+ KB \(out pulling through ties, avg/)
  })

  it("what would fail fails the plan (exit 2) with its reason; stages after it are skipped; --json is JSON alone", async () => {
    const dir = tmp()
    await writeModel(path.join(dir, "a.safetensors"), specs, 1)
    await writeModel(path.join(dir, "b.safetensors"), [{ name: "embed.weight", shape: [50, 17] }], 2)
    const pipeline = path.join(dir, "p.yaml")
    fs.writeFileSync(pipeline, `version: 1
name: failing
stages:
  a: { uses: load, with: { path: a.safetensors } }
  b: { uses: load, with: { path: b.safetensors } }
  gone: { uses: load, with: { path: nowhere.safetensors } }
  avg: { uses: merge/linear, with: { models: [a, b] } }
  out: { uses: save, with: { model: avg, path: out.safetensors } }
  over: { uses: save, with: { model: a, path: a.safetensors } }
`)
    const { code, json, stderr } = plan(pipeline)
    expect(code).toBe(2)
    expect(stderr).toBe("")
    const status = Object.fromEntries(json.stages.map((s) => [s.id, s.status]))
    expect(status).toEqual({ a: "ok", b: "ok", gone: "fails", avg: "fails", out: "skipped", over: "fails" })
    const reason = (id: string) => json.stages.find((s) => s.id === id)!.reason
    expect(reason("avg")).toContain("MergeInputsMismatch")
    expect(reason("gone")).toContain("nowhere.safetensors")
    expect(reason("over")).toContain("is one of the files this model is read from")
    expect(reason("out")).toBe('"avg" fails')
    expect(json.problems).toHaveLength(3)
    const text = crucible(["plan", pipeline])
    expect(text.code).toBe(2)
    expect(text.stdout).toContain("problems:")
  })

  it("the README's example plans clean: stages downstream of training run at run time, none fails, exit 0", () => {
    const { code, json, stderr } = plan(path.join(repo, "examples/rebasin/pipeline.yaml"))
    expect(stderr).toBe("")
    expect(code).toBe(0)
    expect(json.problems).toEqual([])
    expect(new Set(json.stages.map((s) => s.status))).toEqual(new Set(["runs at run time"]))
    expect(json.stages.find((s) => s.id === "save_aligned")!.reason).toBe('needs "a", which runs at run time')
    const text = crucible(["plan", path.join(repo, "examples/rebasin/pipeline.yaml")])
    expect(text.code).toBe(0)
    expect(text.stdout).not.toContain("fails")
  })
})
