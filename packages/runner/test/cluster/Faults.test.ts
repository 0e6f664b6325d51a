// The cluster under faults: a worker killed -9 in the middle of a training, the submitter killed
// and re-attached, Postgres crashed and restarted mid-run. Each run must still end as a local run
// of the same pipeline ends: exit 0, the same output bytes, no stage computed twice, no partial
// files at the output path. Real processes throughout: a private Postgres, `crucible worker`
// children, the submitting `crucible run --cluster` as a child too.
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { crucibleAsync, startCrucible } from "../e2e/cli.ts"
import { postgresMissing, skipWithoutPostgres } from "../support/Postgres.ts"
import { startCluster, type TestCluster } from "./harness.ts"

const missing = postgresMissing()

// A stored `base` (finished long before any fault) and a training `m` of 8 short epochs from it,
// checkpointed after each; `seed` keeps each test's training its own (the results store is shared).
const pipeline = (seed: number) => `version: 1
name: faults
stages:
  base:
    uses: train
    with: { arch: { type: mlp, layers: [784, 32, 10] }, data: mnist, split: val, seed: 1, epochs: 1, batch_size: 50 }
  m:
    uses: train
    with: { init: base, data: mnist, seed: ${seed}, epochs: 8, batch_size: 50 }
  out: { uses: save, with: { model: m, path: out.safetensors } }
`

interface Event {
  readonly type: string
  readonly time: number
  readonly stage?: string
  readonly status?: string
}

const eventsOf = (file: string): Array<Event> =>
  fs.existsSync(file)
    ? fs.readFileSync(file, "utf8").split("\n").flatMap((line) => {
        try {
          return line.trim() === "" ? [] : [JSON.parse(line) as Event]
        } catch {
          return [] // a line still being written
        }
      })
    : []

/** Polls until `check` holds; the limit only turns a hang into a failure that says what never happened. */
const waitFor = async (what: string, check: () => boolean, limitMs = 90_000): Promise<void> => {
  const until = Date.now() + limitMs
  while (!check()) {
    if (Date.now() > until) throw new Error(`never happened: ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

interface SpanEvent {
  readonly name: string
  readonly attributes: Record<string, unknown>
}

const otlpValue = (v: Record<string, unknown>): unknown => v.intValue !== undefined ? Number(v.intValue) : v.doubleValue ?? v.stringValue ?? v.boolValue

/** The spans of a run folder's trace.json (OTLP JSON): their attributes and events. */
const spansOf = (runDir: string): Array<{ name: string; attributes: Record<string, unknown>; events: Array<SpanEvent> }> => {
  const trace = JSON.parse(fs.readFileSync(path.join(runDir, "trace.json"), "utf8"))
  const attrs = (list: Array<{ key: string; value: Record<string, unknown> }> | undefined) => Object.fromEntries((list ?? []).map((a) => [a.key, otlpValue(a.value)]))
  return trace.resourceSpans.flatMap((r: any) =>
    r.scopeSpans.flatMap((s: any) =>
      s.spans.map((sp: any) => ({ name: sp.name, attributes: attrs(sp.attributes), events: (sp.events ?? []).map((e: any) => ({ name: e.name, attributes: attrs(e.attributes) })) }))))
}

const manifestOf = (runDir: string): { stages: Array<{ id: string; cached?: boolean; status: string }> } =>
  JSON.parse(fs.readFileSync(path.join(runDir, "manifest.json"), "utf8"))

/** Whether process `pid` holds `file` open (Linux /proc): a run keeps its events.jsonl open while it runs. */
const holds = (pid: number, file: string): boolean => {
  const fds = `/proc/${pid}/fd`
  try {
    return fs.readdirSync(fds).some((fd) => {
      try {
        return fs.readlinkSync(path.join(fds, fd)) === file
      } catch {
        return false
      }
    })
  } catch {
    return false
  }
}

/** A started child's output so far and its exit. */
const watch = (child: ChildProcess) => {
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()))
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })))
  return { child, stdout: () => stdout, stderr: () => stderr, exited }
}

describe("cluster faults", () => {
  let cluster: TestCluster
  beforeAll(async () => {
    if (missing === undefined) cluster = await startCluster({ workers: 3 })
  }, 120_000)
  afterAll(async () => {
    await cluster?.stop()
  }, 60_000)
  beforeEach((context) => skipWithoutPostgres(context, missing))

  /** A test's own pipeline folder (its output lands there) and the local run's output to compare with. */
  const setUp = (name: string, seed: number) => {
    const dir = path.join(cluster.dir, name)
    const localDir = path.join(cluster.dir, `${name}-local`)
    for (const d of [dir, localDir]) {
      fs.mkdirSync(d)
      fs.writeFileSync(path.join(d, "p.yaml"), pipeline(seed))
    }
    const local = crucibleAsync(["run", path.join(localDir, "p.yaml"), "--runs-dir", path.join(localDir, "runs"), "--run-id", "local", "--quiet"]).then((r) => {
      expect(r.code, r.stderr).toBe(0)
      return fs.readFileSync(path.join(localDir, "out.safetensors"))
    })
    const submit = (runId: string, extra: ReadonlyArray<string> = []) =>
      watch(startCrucible(["run", path.join(dir, "p.yaml"), "--cluster", cluster.url, "--store", cluster.store, "--run-id", runId, ...extra]))
    const units = (runId: string) => path.join(cluster.store, "runs", runId)
    /** The output is the local run's bytes, and nothing else (no temp or partial file) is beside it. */
    const expectOutput = async () => {
      expect(fs.readdirSync(dir).sort()).toEqual(["out.safetensors", "p.yaml"])
      expect(fs.readFileSync(path.join(dir, "out.safetensors")).equals(await local)).toBe(true)
    }
    return { dir, submit, units, expectOutput }
  }

  it("kill -9 of the worker running a training resumes it elsewhere from its checkpoint", async () => {
    const t = setUp("kill-worker", 3)
    const runId = "kill-worker"
    const run = t.submit(runId, ["--json"])
    const events = path.join(t.units(runId), "m", "events.jsonl")
    await waitFor("unit m trained an epoch", () => eventsOf(events).some((e) => e.type === "stage-progress" && e.stage === "m"))
    const victim = cluster.workers.find((w) => w.child.exitCode === null && holds(w.child.pid!, events))
    expect(victim, `no worker holds ${events} open`).toBeDefined()
    victim!.child.kill("SIGKILL")
    await victim!.exited
    // The kill landed in the middle of the training (else there is nothing to resume).
    const before = eventsOf(events)
    expect(before.some((e) => e.type === "stage-finished" && e.stage === "m")).toBe(false)

    const end = await run.exited
    expect(end.code, run.stderr()).toBe(0)
    const last = JSON.parse(run.stdout().trim().split("\n").at(-1)!)
    expect(last).toMatchObject({ type: "run-finished", status: "succeeded" })

    // The second try, on another worker, resumed from the checkpoint of an epoch the first finished.
    const second = path.join(t.units(runId), "m-2")
    const spans = spansOf(second)
    const resumed = spans.flatMap((s) => s.events).find((e) => e.name === "train.resumed")
    expect(resumed, "train.resumed in m-2's trace").toBeDefined()
    expect(resumed!.attributes.epoch).toBeGreaterThanOrEqual(1)
    const epochs = spans.flatMap((s) => s.events).filter((e) => e.name === "train.epoch")
    expect(epochs.length).toBe(8 - Number(resumed!.attributes.epoch))
    const ranOn = new Set(spans.map((s) => s.attributes["crucible.worker.id"]).filter((w) => w !== undefined))
    expect([...ranOn]).toHaveLength(1)
    expect(ranOn.has(victim!.id)).toBe(false)
    // Nothing finished before the kill was computed again: base is taken from the store, and no
    // unit but m has a second folder.
    expect(manifestOf(second).stages.find((s) => s.id === "base")).toMatchObject({ cached: true, status: "succeeded" })
    expect(fs.readdirSync(t.units(runId)).filter((f) => fs.statSync(path.join(t.units(runId), f)).isDirectory()).sort()).toEqual(["base", "m", "m-2", "out"])
    await t.expectOutput()
  }, 120_000)

  it("the submitter killed and re-attached", async () => {
    const t = setUp("reattach", 4)
    const runId = "reattach"
    const run = t.submit(runId)
    const events = path.join(t.units(runId), "m", "events.jsonl")
    await waitFor("unit m started", () => eventsOf(events).some((e) => e.type === "stage-started" && e.stage === "m"))
    run.child.kill("SIGKILL")
    expect(await run.exited).toEqual({ code: null, signal: "SIGKILL" })
    expect(run.stderr()).toContain(`submitted run ${runId}`)
    expect(eventsOf(events).some((e) => e.type === "stage-finished" && e.stage === "m")).toBe(false)

    const attach = ["attach", runId, "--cluster", cluster.url, "--store", cluster.store]
    const attached = await crucibleAsync(attach)
    expect(attached.code, attached.stderr).toBe(0)
    expect(attached.stdout).toMatch(/run succeeded in .*manifest: .*\/runs\/reattach\/manifest\.json\n$/)
    // Attaching to a finished run answers its end again, as events.
    const json = await crucibleAsync([...attach, "--json"])
    expect(json.code, json.stderr).toBe(0)
    expect(JSON.parse(json.stdout.trim().split("\n").at(-1)!)).toMatchObject({ type: "run-finished", status: "succeeded" })
    await t.expectOutput()
  }, 120_000)

  it("Postgres restarted mid-run: the run continues", async () => {
    const t = setUp("pg-restart", 5)
    const runId = "pg-restart"
    const run = t.submit(runId)
    const events = path.join(t.units(runId), "m", "events.jsonl")
    await waitFor("unit m trained an epoch", () => eventsOf(events).some((e) => e.type === "stage-progress" && e.stage === "m"))
    // As a crash would: no shutdown checkpoint, every connection cut; recovery on the next start.
    await cluster.pg.halt("immediate")
    expect(eventsOf(events).some((e) => e.type === "stage-finished" && e.stage === "m")).toBe(false)
    await cluster.pg.start()
    const end = await run.exited
    expect(end.code, `${run.stdout()}\n${run.stderr()}\n${cluster.workers.map((w) => `${w.id}: ${w.output()}`).join("\n")}`).toBe(0)
    // The crash took the workers' shard locks (Postgres advisory locks die with their sessions), so
    // m's message may be delivered again: the worker that had it may have stopped it (the next try
    // resumes from its checkpoint) or finished it before the next try came (which finds it stored).
    // Either way no finished work is computed again, and no two tries of m ran at once.
    const folders = fs.readdirSync(t.units(runId)).filter((f) => fs.statSync(path.join(t.units(runId), f)).isDirectory()).sort()
    expect(folders.filter((f) => !/^m(-\d+)?$/.test(f))).toEqual(["base", "out"])
    const tries = folders.filter((f) => /^m(-\d+)?$/.test(f)).sort((a, b) => (a === "m" ? 0 : Number(a.slice(2))) - (b === "m" ? 0 : Number(b.slice(2))))
    for (const [n, again] of tries.entries()) {
      const folder = path.join(t.units(runId), again)
      const stages = manifestOf(folder).stages
      expect(stages.find((s) => s.id === "base")).toMatchObject({ cached: true })
      if (n === 0) continue
      const m = stages.find((s) => s.id === "m")!
      if (m.cached !== true) expect(spansOf(folder).flatMap((s) => s.events).map((e) => e.name), `${again} resumed`).toContain("train.resumed")
      const previous = eventsOf(path.join(t.units(runId), tries[n - 1]!, "events.jsonl")).at(-1)!
      expect(["run-finished", "run-interrupted"]).toContain(previous.type)
      expect(previous.time).toBeLessThanOrEqual(eventsOf(path.join(folder, "events.jsonl"))[0]!.time)
    }
    await t.expectOutput()
  }, 120_000)
})
