// Content digests off the critical path: a first run over new checkpoints hashes them from the
// bytes the merge reads (ReadTap), its stage keys are resolved when those digests are in, and they
// equal the keys a later run knows up front from the remembered digests.
import { afterAll, describe, expect, it } from "vitest"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Manifest from "../../src/Manifest.ts"
import * as Runner from "../../src/Runner.ts"
import * as FileDigests from "../../src/store/FileDigests.ts"
import * as Identity from "../../src/store/Identity.ts"
import { Effect } from "effect"
import { readModel, writeModel } from "./models.ts"

const specs = [
  { name: "embed", shape: [64, 32] },
  { name: "layer.0.w", shape: [32, 32] },
  { name: "layer.0.b", shape: [32] },
  { name: "layer.1.w", shape: [32, 48], dtype: "BF16" as const }
]

const pipeline = `version: 1
name: lazykeys
stages:
  a: { uses: load, with: { path: a.safetensors } }
  b: { uses: load, with: { path: b.safetensors } }
  c: { uses: load, with: { path: c.safetensors } }
  avg: { uses: merge/linear, with: { models: [a, b, c], weights: [1, 2, 5] } }
  out: { uses: save, with: { model: avg, path: out/merged.safetensors } }
`

const sha = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex")

const made: Array<string> = []
const setup = async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lazykeys-"))
  made.push(dir)
  const values = await Promise.all(["a", "b", "c"].map((n, i) => writeModel(path.join(dir, `${n}.safetensors`), specs, i + 1)))
  fs.writeFileSync(path.join(dir, "p.yaml"), pipeline)
  return { dir, values, runsDir: path.join(dir, "runs"), inputs: ["a", "b", "c"].map((n) => path.join(dir, `${n}.safetensors`)) }
}

const run = (dir: string, runsDir: string, runId: string) => Runner.runPromise(path.join(dir, "p.yaml"), { runsDir, runId, telemetry: "none" })
const outcome = (result: Runner.RunResult, id: string) => result.outcomes.find((o) => o.id === id)!

// The counts the run logs of its input digests (fed from reads, read again).
const digestCounts = (runDir: string) => {
  const lines = fs.readFileSync(path.join(runDir, "log.jsonl"), "utf8").split("\n").filter((l) => l.includes("crucible.digests.fed"))
  return lines.map((l) => JSON.stringify(JSON.parse(l))).join("")
}

describe("lazy stage keys, digests from the reads", () => {
  afterAll(() => made.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })))
  it("a first run hashes its new inputs from the merge's reads (each byte read once), and a second run knows every key up front and reuses all", async () => {
    const { dir, values, runsDir, inputs } = await setup()
    const first = await run(dir, runsDir, "r1")
    expect(first.status).toBe("succeeded")
    // The merge is right (float64 reference), whatever the hashing did.
    const merged = await readModel(path.join(dir, "out/merged.safetensors"))
    const w = [1, 2, 5].map((x) => x / 8)
    for (const s of specs) {
      const want = values[0]!.get(s.name)!.map((_, i) => w[0]! * values[0]!.get(s.name)![i]! + w[1]! * values[1]!.get(s.name)![i]! + w[2]! * values[2]!.get(s.name)![i]!)
      const got = merged.get(s.name)!.values
      for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(s.dtype === "BF16" ? Math.abs(want[i]!) * 2 ** -7 : Math.abs(want[i]!) * 2 ** -22 + 1e-30)
    }
    const manifest = await Effect.runPromise(Manifest.read(path.join(first.runDir, "manifest.json")))
    // Every input: its sha256, and read once in all (headers + tensors; only the 16 bytes format
    // detection looks at come again, as the header's length), nothing read again to hash it.
    for (const file of inputs) {
      const record = manifest.inputs.find((r) => r.path === file)!
      expect(record.sha256).toBe(sha(file))
      expect(record.bytesRead).toBe(fs.statSync(file).size + 16)
    }
    const total = inputs.reduce((n, f) => n + fs.statSync(f).size, 0)
    const counts = digestCounts(first.runDir)
    expect(counts).toContain(`"crucible.digests.fed":${total}`)
    expect(counts).toContain(`"crucible.digests.reread":0`)
    // The keys resolved at the end are the keys computed up front from the remembered digests.
    const loaded = await Effect.runPromise(Runner.load(path.join(dir, "p.yaml"), { preflight: false }))
    const digests = await Effect.runPromise(FileDigests.make(path.join(runsDir, ".cache", "digests")))
    const lazy = Identity.lazyStageKeys(loaded.pipeline, dir, digests)
    expect(lazy.pendingFiles).toEqual([])
    for (const o of first.outcomes) expect(lazy.known.get(o.id)).toBe(o.key)
    expect(manifest.stages.map((s) => s.key)).toEqual(first.outcomes.map((o) => o.key))
    const second = await run(dir, runsDir, "r2")
    expect(outcome(second, "out").cached).toBe(true)
    expect(second.outcomes.map((o) => o.key)).toEqual(first.outcomes.map((o) => o.key))
    // Nothing hashed again, nothing read: the save's stored files were checked by remembered digests.
    expect(digestCounts(second.runDir)).toBe("")
  }, 60_000)

  it("a save whose output exists but whose inputs have no remembered digest waits for the digests and reuses its stored result", async () => {
    const { dir, runsDir, inputs } = await setup()
    const first = await run(dir, runsDir, "r1")
    expect(first.status).toBe("succeeded")
    const written = fs.statSync(path.join(dir, "out/merged.safetensors"))
    // Forget the inputs' digests (kept: the output's, which the stored result is checked against).
    const digestsDir = path.join(runsDir, ".cache", "digests")
    for (const file of inputs) {
      const s = fs.statSync(file, { bigint: true })
      fs.rmSync(path.join(digestsDir, `${s.dev}-${s.ino}.json`))
    }
    const second = await run(dir, runsDir, "r2")
    expect(second.status).toBe("succeeded")
    expect(outcome(second, "out").cached).toBe(true)
    expect(outcome(second, "out").key).toBe(outcome(first, "out").key)
    // Not written again.
    expect(fs.statSync(path.join(dir, "out/merged.safetensors")).mtimeMs).toBe(written.mtimeMs)
    const manifest = await Effect.runPromise(Manifest.read(path.join(second.runDir, "manifest.json")))
    for (const file of inputs) expect(manifest.inputs.find((r) => r.path === file)?.sha256 ?? sha(file)).toBe(sha(file))
  }, 60_000)
})
