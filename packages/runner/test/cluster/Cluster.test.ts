// A pipeline run on a loopback cluster (3 `crucible worker` processes over a private Postgres, a
// shared store) gives the same bytes as the same pipeline run here; its units spread over the
// workers, each stage span names the worker and host that ran it; a unit no worker fits is refused
// up front, and a worker that does not fit a unit never gets it; `runs --cluster` lists the run;
// submitting the same run id again follows the finished run instead of computing it again.
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { crucibleAsync } from "../e2e/cli.ts"
import { postgresMissing, skipWithoutPostgres } from "../support/Postgres.ts"
import { startCluster, type TestCluster } from "./harness.ts"

const missing = postgresMissing()
if (missing !== undefined) console.warn(missing)
beforeEach((context) => skipWithoutPostgres(context, missing))

const torch = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../core/fixtures/torch")

// Independent trainings (iris, a few epochs: well under a second each), their soup and saves, and a
// merge of two committed PyTorch checkpoints saved as bf16. Eight units, so that the chance of
// all of them landing on one of three workers is negligible (3^-7).
const pipeline = `version: 1
name: cluster-equality
stages:
  t1: { uses: train, with: { arch: { type: mlp, layers: [4, 16, 3] }, data: iris, seed: 1, epochs: 3, batch_size: 16 } }
  t2: { uses: train, with: { arch: { type: mlp, layers: [4, 16, 3] }, data: iris, seed: 2, epochs: 3, batch_size: 16 } }
  t3: { uses: train, with: { arch: { type: mlp, layers: [4, 16, 3] }, data: iris, seed: 3, epochs: 3, batch_size: 16 } }
  soup: { uses: merge/linear, with: { models: [t1, t2, t3] } }
  save_soup: { uses: save, with: { model: soup, path: out/soup.safetensors } }
  save_t1: { uses: save, with: { model: t1, path: out/t1.safetensors } }
  save_t2: { uses: save, with: { model: t2, path: out/t2.safetensors } }
  save_t3: { uses: save, with: { model: t3, path: out/t3.safetensors } }
  a: { uses: load, with: { path: ${path.join(torch, "merge_a.pt")} } }
  b: { uses: load, with: { path: ${path.join(torch, "merge_b.pt")} } }
  avg: { uses: merge/linear, with: { models: [a, b], weights: [0.3, 0.7] } }
  save_avg: { uses: save, with: { model: avg, path: out/avg.safetensors, dtype: bf16 } }
`
const outputs = ["out/soup.safetensors", "out/t1.safetensors", "out/t2.safetensors", "out/t3.safetensors", "out/avg.safetensors"]
const units = ["t1", "t2", "t3", "save_soup", "save_t1", "save_t2", "save_t3", "save_avg"]

/** A folder holding the pipeline (its outputs land beside it). */
const pipelineIn = (dir: string, text = pipeline): string => {
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, "p.yaml"), text)
  return path.join(dir, "p.yaml")
}

const sha256 = (file: string): string => createHash("sha256").update(fs.readFileSync(file)).digest("hex")

/** The sha256 of each output under `dir` ("missing" for one that is not there). */
const digests = (dir: string): Record<string, string> =>
  Object.fromEntries(outputs.map((f) => [f, fs.existsSync(path.join(dir, f)) ? sha256(path.join(dir, f)) : "missing"]))

interface Span {
  readonly name: string
  readonly attributes: Record<string, unknown>
}

/** The spans of a run folder's trace.json, attributes as a plain record. */
const spans = (runDir: string): Array<Span> => {
  const trace = JSON.parse(fs.readFileSync(path.join(runDir, "trace.json"), "utf8"))
  return trace.resourceSpans.flatMap((r: any) =>
    r.scopeSpans.flatMap((s: any) =>
      s.spans.map((sp: any): Span => ({
        name: sp.name,
        attributes: Object.fromEntries(sp.attributes.map((a: any) => [a.key, Object.values(a.value)[0]]))
      }))))
}

/** The stage spans (`stage <id>`) of a unit's run folder. */
const stageSpans = (runDir: string): Array<Span> => spans(runDir).filter((s) => s.name.startsWith("stage "))

/** The run folders a cluster run left in the store: one per unit try (`<unit>`, `<unit>-2`, …). */
const unitFolders = (store: string, runId: string): Array<string> =>
  fs.readdirSync(path.join(store, "runs", runId), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort()

/** The worker each unit's stage ran on, from its folder's trace. */
const workerOf = (store: string, runId: string, unit: string): unknown =>
  stageSpans(path.join(store, "runs", runId, unit)).find((s) => s.attributes["crucible.stage.id"] === unit)?.attributes["crucible.worker.id"]

describe("a cluster of 3 workers", () => {
  let cluster: TestCluster
  beforeAll(async () => {
    if (missing === undefined) cluster = await startCluster({ workers: 3 })
  }, 90_000)
  afterAll(async () => {
    await cluster?.stop()
  })

  it("a pipeline of independent trainings + merges over 3 workers equals the local run byte for byte", async () => {
    const local = pipelineIn(path.join(cluster.dir, "local"))
    const remote = pipelineIn(path.join(cluster.dir, "remote"))
    const [here, there] = await Promise.all([
      crucibleAsync(["run", local, "--runs-dir", path.join(cluster.dir, "local", "runs"), "--quiet"]),
      crucibleAsync(["run", remote, "--cluster", cluster.url, "--store", cluster.store, "--run-id", "equal"])
    ])
    expect(here.stderr).toBe("")
    expect(here.code).toBe(0)
    expect(there.stderr).toContain("submitted run equal to the cluster (8 units)")
    expect(there.code, there.stderr).toBe(0)

    expect(digests(path.join(cluster.dir, "remote"))).toEqual(digests(path.join(cluster.dir, "local")))

    expect(unitFolders(cluster.store, "equal")).toEqual([...units].sort())
    const ids = cluster.workers.map((w) => w.id)
    for (const unit of units) {
      const stages = stageSpans(path.join(cluster.store, "runs", "equal", unit))
      expect(stages.map((s) => s.attributes["crucible.stage.id"]), unit).toContain(unit)
      for (const s of stages) {
        expect(ids, `${unit}: ${s.name}`).toContain(s.attributes["crucible.worker.id"])
        expect(s.attributes["host.name"], `${unit}: ${s.name}`).toEqual(expect.any(String))
        expect(s.attributes["crucible.cluster.run.id"], `${unit}: ${s.name}`).toBe("equal")
      }
    }
    const used = new Set(units.map((u) => workerOf(cluster.store, "equal", u)))
    expect(used.size, `units ran on ${[...used].join(", ")}`).toBeGreaterThan(1)

    // A worker runs one unit at a time (`--slots 1`, the default): its units' runs do not overlap.
    for (const id of ids) {
      const spans = units.filter((u) => workerOf(cluster.store, "equal", u) === id).map((u) => {
        const m = JSON.parse(fs.readFileSync(path.join(cluster.store, "runs", "equal", u, "manifest.json"), "utf8"))
        return { unit: u, start: Date.parse(m.startedAt), end: Date.parse(m.endedAt) }
      }).sort((a, b) => a.start - b.start)
      for (let i = 1; i < spans.length; i++) expect(spans[i]!.start, `${id}: ${spans[i - 1]!.unit} then ${spans[i]!.unit}`).toBeGreaterThanOrEqual(spans[i - 1]!.end)
    }
  }, 90_000)

  it("`crucible runs --cluster` lists runs and their state", async () => {
    const listed = await crucibleAsync(["runs", "--cluster", cluster.url, "--json"])
    expect(listed.stderr).toBe("")
    expect(listed.code).toBe(0)
    const runs = JSON.parse(listed.stdout) as Array<{ runId: string; pipeline: string; state: string; submittedAt: number }>
    expect(runs).toContainEqual({ runId: "equal", pipeline: "cluster-equality", state: "succeeded", submittedAt: expect.any(Number) })
  })

  it("submitting the same run id again follows the same run", async () => {
    const remote = path.join(cluster.dir, "remote")
    const before = Object.fromEntries(outputs.map((f) => [f, fs.statSync(path.join(remote, f)).mtimeMs]))
    const again = await crucibleAsync(["run", path.join(remote, "p.yaml"), "--cluster", cluster.url, "--store", cluster.store, "--run-id", "equal", "--json"])
    expect(again.code, again.stderr).toBe(0)
    const events = again.stdout.trim().split("\n").map((l) => JSON.parse(l) as { type: string; status?: string })
    expect(events.at(-1)).toMatchObject({ type: "run-finished", status: "succeeded" })
    // No unit was sent again (no `<unit>-2` folder) and no output written again.
    expect(unitFolders(cluster.store, "equal")).toEqual([...units].sort())
    for (const f of outputs) expect(fs.statSync(path.join(remote, f)).mtimeMs, f).toBe(before[f])
    const listed = JSON.parse((await crucibleAsync(["runs", "--cluster", cluster.url, "--json"])).stdout) as Array<{ runId: string }>
    expect(listed.filter((r) => r.runId === "equal")).toHaveLength(1)
  }, 60_000)
})

describe("placement by resources", () => {
  // One training and its save: small, but above nothing a 100 MB worker hosts (its memory is below
  // the smallest tier, 512 MiB, so it hosts no stage group at all).
  const small = `version: 1
name: cluster-fit
stages:
  t: { uses: train, with: { arch: { type: mlp, layers: [4, 8, 3] }, data: iris, seed: 7, epochs: 2, batch_size: 16 } }
  save_t: { uses: save, with: { model: t, path: out/t.safetensors } }
`
  it("a stage no worker can fit fails with a clear error naming its needs; a worker that cannot fit a stage never takes it", async () => {
    const cluster = await startCluster({ workers: 0 })
    try {
      await cluster.startWorker("tiny", ["--memory", "100MB"])
      const file = pipelineIn(path.join(cluster.dir, "fit"), small)
      const refused = await crucibleAsync(["run", file, "--cluster", cluster.url, "--store", cluster.store, "--run-id", "refused"])
      expect(refused.code).toBe(2)
      expect(refused.stderr).toMatch(/stage "t" needs cpu, .+ of memory, and no worker of the cluster offers it \(workers: 127\.0\.0\.1:\d+: no stage group \(its --memory is below the smallest tier, 512MiB\)\)/)
      expect(fs.existsSync(path.join(cluster.store, "runs", "refused"))).toBe(false)

      await cluster.startWorker("big", ["--memory", "4GB"])
      const placed = await crucibleAsync(["run", file, "--cluster", cluster.url, "--store", cluster.store, "--run-id", "placed"])
      expect(placed.code, placed.stderr).toBe(0)
      expect(unitFolders(cluster.store, "placed")).toEqual(["save_t", "t"])
      for (const unit of ["t", "save_t"]) {
        const stages = stageSpans(path.join(cluster.store, "runs", "placed", unit))
        expect(stages.length, unit).toBeGreaterThan(0)
        for (const s of stages) expect(s.attributes["crucible.worker.id"], `${unit}: ${s.name}`).toBe("big")
      }
    } finally {
      await cluster.stop()
    }
  }, 90_000)
})
