import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Runner from "../../src/Runner.ts"
import * as RunData from "../../src/ui/RunData.ts"
import { fusionRun, fusionStages, tmp } from "./fixtures.ts"

let dir: string
let run: Awaited<ReturnType<typeof fusionRun>>

const fail = <E>(effect: Effect.Effect<unknown, E>) => Effect.runPromise(Effect.flip(effect))

beforeAll(async () => {
  dir = tmp("data")
  run = await fusionRun(dir)
})
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

describe("reading a finished run", () => {
  it("gives every stage its state, the DAG the validator's dependencies, and the trace's spans", async () => {
    expect(run.code).toBe(1)
    const view = await Effect.runPromise(RunData.readRun(run.runsDir, "fusion"))
    expect(view.status).toBe("failed")
    expect(view.stages.map((s) => s.id)).toEqual([...fusionStages])
    const state = Object.fromEntries(view.stages.map((s) => [s.id, s.state]))
    expect(state).toMatchObject({ a: "succeeded", missing: "failed", bad: "skipped", bad_out: "skipped", curve: "succeeded" })
    expect(view.stages.find((s) => s.id === "bad")!.blockedBy).toBe("missing")
    expect(view.stages.find((s) => s.id === "missing")!.error!.tag).toBe("IoError")
    // The validator's own dependencies are the reference for the edges.
    const loaded = await Effect.runPromise(Runner.load(run.pipeline))
    for (const s of loaded.pipeline.stages) expect([...view.stages.find((v) => v.id === s.id)!.dependsOn].sort()).toEqual([...s.dependsOn].sort())
    expect(view.spansFrom).toBe("trace")
    const trace = JSON.parse(fs.readFileSync(path.join(run.runDir, "trace.json"), "utf8"))
    const spanCount = trace.resourceSpans.flatMap((r: { scopeSpans: Array<{ spans: Array<unknown> }> }) => r.scopeSpans.flatMap((s) => s.spans)).length
    expect(view.spans).toHaveLength(spanCount)
    expect(view.spans.filter((s) => s.stageId !== undefined).map((s) => s.stageId).sort()).toEqual(fusionStages.filter((s) => !s.startsWith("bad")).sort())
    expect(view.eventCount).toBe(fs.readFileSync(path.join(run.runDir, "events.jsonl"), "utf8").trim().split("\n").length)
    // Training epochs recorded as span events reach their stage.
    expect(view.stages.find((s) => s.id === "fit_a")!.spanEvents.filter((e) => e.name === "train.epoch").map((e) => e.attributes.epoch)).toEqual([1, 2, 3, 4])
  })

  it("lists runs newest first, leaving out what is not a readable run", async () => {
    const later = path.join(run.runsDir, "later")
    fs.mkdirSync(later)
    const manifest = JSON.parse(fs.readFileSync(path.join(run.runDir, "manifest.json"), "utf8"))
    fs.writeFileSync(path.join(later, "manifest.json"), JSON.stringify({ ...manifest, runId: "later", startedAt: new Date(Date.parse(manifest.startedAt) + 3_600_000).toISOString() }))
    fs.mkdirSync(path.join(run.runsDir, "empty"))
    fs.mkdirSync(path.join(run.runsDir, "broken"))
    fs.writeFileSync(path.join(run.runsDir, "broken", "manifest.json"), "{ not json")
    const rows = await Effect.runPromise(RunData.listRuns(run.runsDir))
    expect(rows.map((r) => r.runId)).toEqual(["later", "fusion"])
    expect(rows[1]).toMatchObject({ status: "failed", pipeline: "fusion", stages: fusionStages.length, failed: 1 })
    expect(await Effect.runPromise(RunData.listRuns(path.join(dir, "no-such-dir")))).toEqual([])
    const broken = await fail(RunData.readRun(run.runsDir, "broken"))
    expect(broken._tag).toBe("RunUnreadable")
    expect(broken.message).toContain(path.join(run.runsDir, "broken", "manifest.json"))
  })
})

describe("path safety", () => {
  it("refuses run ids that are not one plain directory name, before touching the disk", async () => {
    for (const id of ["..", ".", "../fusion", "a/b", "a\\b", "", "fu\0sion", "%2e%2e", ".hidden"]) {
      const e = await fail(RunData.runDirOf(run.runsDir, id))
      expect(e._tag, id).toBe("InvalidRunId")
    }
    expect((await fail(RunData.runDirOf(run.runsDir, "nope")))._tag).toBe("RunNotFound")
  })

  it("does not follow a run directory symlinked out of the runs directory", async () => {
    const outside = path.join(dir, "outside-run")
    fs.mkdirSync(outside)
    fs.copyFileSync(path.join(run.runDir, "manifest.json"), path.join(outside, "manifest.json"))
    fs.symlinkSync(outside, path.join(run.runsDir, "escape"))
    expect((await fail(RunData.runDirOf(run.runsDir, "escape")))._tag).toBe("RunNotFound")
  })

  it("serves only regular files inside the run directory", async () => {
    expect(await Effect.runPromise(RunData.runFile(run.runsDir, "fusion", "curve.svg"))).toBe(fs.realpathSync(path.join(run.runDir, "curve.svg")))
    fs.writeFileSync(path.join(dir, "secret.txt"), "secret")
    fs.symlinkSync(path.join(dir, "secret.txt"), path.join(run.runDir, "link.txt"))
    fs.mkdirSync(path.join(run.runDir, "sub"))
    for (const p of ["../../secret.txt", "../../fusion.yaml", "/etc/passwd", path.join(dir, "secret.txt"), "link.txt", ".", "", "sub", "missing.svg", "a\0b"]) {
      const e = await fail(RunData.runFile(run.runsDir, "fusion", p))
      expect(e._tag, p).toBe("FileNotServed")
    }
    expect((await fail(RunData.runFile(run.runsDir, "..", "curve.svg")))._tag).toBe("InvalidRunId")
  })
})
