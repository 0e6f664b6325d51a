import { describe, expect, it } from "vitest"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { DType } from "@crucible/core"
import { Effect } from "effect"
import * as FileDigests from "../../src/store/FileDigests.ts"
import * as Manifest from "../../src/Manifest.ts"
import { crucible } from "./cli.ts"
import { readModel, writeFilled, writeModel } from "./models.ts"
import { tempDir } from "../support/TempDir.ts"

const tmp = () => tempDir("crucible-run-")

const specs = [
  { name: "embed.weight", shape: [50, 16] },
  { name: "layers.0.weight", shape: [32, 16] },
  { name: "layers.0.bias", shape: [32] },
  { name: "scalar", shape: [] },
  { name: "empty", shape: [0, 4] }
]

describe("crucible run (end to end)", () => {
  it("merges real safetensors files and matches a float64 reference", async () => {
    const dir = tmp()
    const a = await writeModel(path.join(dir, "a.safetensors"), specs, 1)
    const b = await writeModel(path.join(dir, "b.safetensors"), specs, 2)
    const c = await writeModel(path.join(dir, "c.safetensors"), specs, 3)
    fs.writeFileSync(path.join(dir, "p.yaml"), `version: 1
name: average-three
stages:
  a: { uses: load, with: { path: a.safetensors } }
  b: { uses: load, with: { path: b.safetensors } }
  c: { uses: load, with: { path: c.safetensors } }
  avg: { uses: merge/linear, with: { models: [a, b, c], weights: [1, 2, 5] } }
  out: { uses: save, with: { model: avg, path: out/merged.safetensors } }
`)
    const r = crucible(["run", path.join(dir, "p.yaml"), "--runs-dir", path.join(dir, "runs"), "--run-id", "r1"])
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    const merged = await readModel(path.join(dir, "out/merged.safetensors"))
    expect([...merged.keys()]).toEqual(specs.map((s) => s.name))
    for (const s of specs) {
      const got = merged.get(s.name)!
      expect(got.shape).toEqual(s.shape)
      expect(got.dtype).toBe("F32")
      const ref = a.get(s.name)!.map((x, i) => (1 * x + 2 * b.get(s.name)![i]! + 5 * c.get(s.name)![i]!) / 8)
      for (let i = 0; i < ref.length; i++) expect(Math.abs(got.values[i]! - ref[i]!)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(ref[i]!)))
    }
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, "runs/r1/manifest.json"), "utf8"))
    expect(manifest.status).toBe("succeeded")
    expect(manifest.stages.map((s: { id: string; status: string }) => [s.id, s.status])).toEqual([["a", "succeeded"], ["b", "succeeded"], ["c", "succeeded"], ["avg", "succeeded"], ["out", "succeeded"]])
    expect(manifest.inputs.map((f: { path: string }) => path.basename(f.path)).sort()).toEqual(["a.safetensors", "b.safetensors", "c.safetensors"])
    expect(manifest.outputs).toHaveLength(1)
    expect(manifest.outputs[0].sha256).toMatch(/^[0-9a-f]{64}$/)
    expect(manifest.outputs[0].bytes).toBe(fs.statSync(path.join(dir, "out/merged.safetensors")).size)
    expect(manifest.tools.node).toBe(process.version)
    expect(manifest.stages[3].key).toMatch(/^[0-9a-f]{64}$/)
  })

  it("converts bf16 and f16 inputs exactly and saves the dtype asked for", async () => {
    const dir = tmp()
    const a = await writeModel(path.join(dir, "a.safetensors"), [{ name: "w", shape: [64, 8], dtype: "BF16" }], 4)
    const b = await writeModel(path.join(dir, "b.safetensors"), [{ name: "w", shape: [64, 8], dtype: "BF16" }], 5)
    fs.writeFileSync(path.join(dir, "p.yaml"), `version: 1
name: bf16
stages:
  a: { uses: load, with: { path: a.safetensors } }
  b: { uses: load, with: { path: b.safetensors } }
  avg: { uses: merge/linear, with: { models: [a, b], dtype: float64 } }
  as_f16: { uses: save, with: { model: avg, path: f16.safetensors, dtype: float16 } }
  as_bf16: { uses: save, with: { model: avg, path: bf16.safetensors, dtype: bf16 } }
  as_f32: { uses: save, with: { model: avg, path: f32.safetensors, dtype: F32 } }
  as_is: { uses: save, with: { model: a, path: same.safetensors } }
`)
    const r = crucible(["run", path.join(dir, "p.yaml"), "--runs-dir", path.join(dir, "runs")])
    expect(r.code).toBe(0)
    const mean = a.get("w")!.map((x, i) => (x + b.get("w")![i]!) / 2)
    const f16 = (await readModel(path.join(dir, "f16.safetensors"))).get("w")!
    const bf16 = (await readModel(path.join(dir, "bf16.safetensors"))).get("w")!
    const f32 = (await readModel(path.join(dir, "f32.safetensors"))).get("w")!
    const same = (await readModel(path.join(dir, "same.safetensors"))).get("w")!
    expect([f16.dtype, bf16.dtype, f32.dtype, same.dtype]).toEqual(["F16", "BF16", "F32", "BF16"])
    expect(Array.from(same.values)).toEqual(Array.from(a.get("w")!))
    // The mean of two bf16 values is exact in f32 and f64, so each output is the mean rounded once.
    expect(Array.from(f32.values)).toEqual(Array.from(mean, (x) => Math.fround(x)))
    expect(Array.from(f16.values)).toEqual(Array.from(mean, (x) => DType.f16BitsToFloat(DType.float32ToF16Bits(x))))
    expect(Array.from(bf16.values)).toEqual(Array.from(mean, (x) => DType.bf16BitsToFloat(DType.float32ToBF16Bits(x))))
  })

  it("fails the dependents of a failed stage, finishes the others, and exits 1", async () => {
    const dir = tmp()
    await writeModel(path.join(dir, "a.safetensors"), specs, 1)
    // A NaN is in the data, which validation never reads: the pipeline is valid, and the merge fails when run.
    await writeFilled(path.join(dir, "nan.safetensors"), specs, Number.NaN)
    fs.writeFileSync(path.join(dir, "p.yaml"), `version: 1
name: partial
stages:
  a: { uses: load, with: { path: a.safetensors } }
  nan: { uses: load, with: { path: nan.safetensors } }
  bad: { uses: merge/linear, with: { models: [a, nan] } }
  bad_out: { uses: save, with: { model: bad, path: bad.safetensors } }
  again: { uses: load, with: { path: bad.safetensors }, needs: [bad_out] }
  again_out: { uses: save, with: { model: again, path: again.safetensors } }
  good_out: { uses: save, with: { model: a, path: good.safetensors } }
`)
    expect(crucible(["validate", path.join(dir, "p.yaml")]).code).toBe(0)
    const r = crucible(["run", path.join(dir, "p.yaml"), "--runs-dir", path.join(dir, "runs"), "--run-id", "r"])
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(/✗ bad(_out)? \((merge\/linear|save)\) failed/)
    expect(r.stdout).toContain("NonFiniteTensor")
    expect(r.stdout).toMatch(/- again \(load\) skipped — skipped because "bad(_out)?" failed/)
    expect(r.stdout).toMatch(/- again_out \(save\) skipped — skipped because "bad(_out)?" failed/)
    expect(fs.existsSync(path.join(dir, "good.safetensors"))).toBe(true)
    expect(fs.existsSync(path.join(dir, "bad.safetensors"))).toBe(false)
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, "runs/r/manifest.json"), "utf8"))
    expect(manifest.status).toBe("failed")
    expect(manifest.stages.find((s: { id: string }) => s.id === "again").status).toBe("skipped")
    // --quiet says nothing about what went well, but still names the failure and the run directory, on stderr.
    const quiet = crucible(["run", path.join(dir, "p.yaml"), "--runs-dir", path.join(dir, "runs"), "--run-id", "q", "--quiet"])
    expect(quiet.code).toBe(1)
    expect(quiet.stdout).toBe("")
    expect(quiet.stderr).toMatch(/✗ bad(_out)? \((merge\/linear|save)\) failed/)
    expect(quiet.stderr).toContain("NonFiniteTensor")
    expect(quiet.stderr).toContain(`run failed in `)
    expect(quiet.stderr).toContain(path.join(dir, "runs", "q", "manifest.json"))
    expect(quiet.stderr).not.toMatch(/good_out|skipped/)
  })

  it("rejects mismatched inputs from their headers, listing every mismatch, before writing", async () => {
    const dir = tmp()
    await writeModel(path.join(dir, "a.safetensors"), [{ name: "w", shape: [4, 4] }, { name: "b", shape: [4] }, { name: "x", shape: [2] }], 1)
    await writeModel(path.join(dir, "b.safetensors"), [{ name: "w", shape: [4, 5] }, { name: "b", shape: [4], dtype: "F16" }, { name: "y", shape: [2] }], 2)
    fs.writeFileSync(path.join(dir, "p.yaml"), `version: 1
name: mismatch
stages:
  a: { uses: load, with: { path: a.safetensors } }
  b: { uses: load, with: { path: b.safetensors } }
  avg: { uses: merge/linear, with: { models: [a, b] } }
  out: { uses: save, with: { model: avg, path: out.safetensors } }
`)
    const plan = crucible(["plan", path.join(dir, "p.yaml")])
    expect(plan.code).toBe(2)
    expect(plan.stdout).toContain("MergeInputsMismatch")
    // Found by the preflight, each mismatch at the merge's reference to the model that differs: nothing runs.
    const r = crucible(["run", path.join(dir, "p.yaml"), "--runs-dir", path.join(dir, "runs")])
    expect(r.code).toBe(2)
    for (const m of ['"w" has shape 4×4 in model 1 but 4×5', '"b" is F32 in model 1 but F16', '"x" is missing in model 2', '"y" is in model 2']) {
      expect(r.stderr).toContain(`p.yaml:6:50: [HeaderMismatch] stage "avg": ${m}`)
    }
    expect(fs.existsSync(path.join(dir, "runs"))).toBe(false)
    expect(fs.existsSync(path.join(dir, "out.safetensors"))).toBe(false)
  })

  it("refuses to overwrite an input", async () => {
    const dir = tmp()
    await writeModel(path.join(dir, "a.safetensors"), specs, 1)
    const before = fs.readFileSync(path.join(dir, "a.safetensors"))
    fs.writeFileSync(path.join(dir, "p.yaml"), `version: 1
name: overwrite
stages:
  a: { uses: load, with: { path: a.safetensors } }
  out: { uses: save, with: { model: a, path: ./a.safetensors } }
`)
    // The preflight finds it (the save's dry run), so nothing runs.
    const r = crucible(["run", path.join(dir, "p.yaml"), "--runs-dir", path.join(dir, "runs")])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('p.yaml:5:46: [OutputUnwritable] stage "out"')
    expect(r.stderr).toContain("is one of the files this model is read from")
    expect(fs.readFileSync(path.join(dir, "a.safetensors")).equals(before)).toBe(true)
  })

  it("validate exits 2 with file:line:col and a code frame; --json lists the problems", () => {
    const dir = tmp()
    const file = path.join(dir, "p.yaml")
    fs.writeFileSync(file, `version: 1
name: broken
stages:
  a: { uses: lod, with: { path: a.safetensors } }
`)
    const r = crucible(["validate", file])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`${file}:4:14: [UnknownStageKind] stage "a": unknown stage kind "lod" (did you mean "load"?)`)
    expect(r.stderr).toContain("> 4 |")
    const j = crucible(["validate", file, "--json"])
    expect(j.code).toBe(2)
    expect(JSON.parse(j.stdout).problems[0]).toMatchObject({ code: "UnknownStageKind", position: { line: 4, col: 14 } })
  })

  it("emits one JSON event per line with --json", async () => {
    const dir = tmp()
    await writeModel(path.join(dir, "a.safetensors"), specs, 1)
    fs.writeFileSync(path.join(dir, "p.yaml"), `version: 1
name: json
stages:
  a: { uses: load, with: { path: a.safetensors } }
  out: { uses: save, with: { model: a, path: copy.safetensors, dtype: bf16 } }
`)
    const r = crucible(["run", path.join(dir, "p.yaml"), "--runs-dir", path.join(dir, "runs"), "--json"])
    expect(r.code).toBe(0)
    const events = r.stdout.trim().split("\n").map((l) => JSON.parse(l))
    expect(events[0].type).toBe("run-started")
    expect(events.at(-1)).toMatchObject({ type: "run-finished", status: "succeeded" })
    expect(events.filter((e) => e.type === "stage-progress" && e.stage === "out").at(-1)).toMatchObject({ done: 5, total: 5, unit: "tensors" })
  })

  it("remembers input digests across runs by device, inode, size and mtime, and notices a changed input", async () => {
    const dir = tmp()
    await writeModel(path.join(dir, "a.safetensors"), specs, 1)
    fs.writeFileSync(path.join(dir, "p.yaml"), `version: 1
name: digests
stages:
  a: { uses: load, with: { path: a.safetensors } }
  out: { uses: save, with: { model: a, path: out.safetensors } }
`)
    const digestOf = (runId: string) => {
      expect(crucible(["run", path.join(dir, "p.yaml"), "--runs-dir", path.join(dir, "runs"), "--run-id", runId, "--quiet"]).code).toBe(0)
      return JSON.parse(fs.readFileSync(path.join(dir, "runs", runId, "manifest.json"), "utf8")).inputs[0].sha256 as string
    }
    const first = digestOf("one")
    expect(first).toBe(createHash("sha256").update(fs.readFileSync(path.join(dir, "a.safetensors"))).digest("hex"))
    const stat = fs.statSync(path.join(dir, "a.safetensors"), { bigint: true })
    expect(fs.readdirSync(path.join(dir, "runs/.cache/digests"))).toContain(`${stat.dev}-${stat.ino}.json`)
    expect(digestOf("two")).toBe(first)
    await writeModel(path.join(dir, "a.safetensors"), specs, 2)
    const changed = digestOf("three")
    expect(changed).not.toBe(first)
    expect(changed).toBe(createHash("sha256").update(fs.readFileSync(path.join(dir, "a.safetensors"))).digest("hex"))
  })

  it("hashes inputs ahead on worker threads, and rehashes one changed after its hashing started", async () => {
    const dir = tmp()
    const files = ["x.bin", "y.bin", "z.bin"].map((n) => path.join(dir, n))
    files.forEach((f, i) => fs.writeFileSync(f, Buffer.alloc(3_000_000 + i, i + 1)))
    const cache = path.join(dir, "cache", "digests")
    const records = await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
      const digests = yield* Manifest.inputDigests(yield* FileDigests.make(cache))
      yield* Effect.forEach(files, digests.start, { discard: true })
      // y changes after its hashing started: its size (and mtime) no longer match.
      fs.writeFileSync(files[1]!, Buffer.alloc(1000, 9))
      return yield* digests.finish([...files, path.join(dir, "missing.bin")])
    })))
    const sha = (f: string) => createHash("sha256").update(fs.readFileSync(f)).digest("hex")
    expect(records.slice(0, 3)).toEqual(files.map((f) => ({ path: f, bytes: fs.statSync(f).size, sha256: sha(f) })))
    expect(records[3]).toEqual({ path: path.join(dir, "missing.bin"), bytes: 0, sha256: "unreadable" })
    // The next run takes them from the cache.
    const remembered = fs.readdirSync(cache).length
    expect(remembered).toBe(3)
    const again = await Effect.runPromise(Effect.scoped(Effect.flatMap(Effect.flatMap(FileDigests.make(cache), Manifest.inputDigests), (d) => d.finish(files))))
    expect(again).toEqual(records.slice(0, 3))
  })
})
