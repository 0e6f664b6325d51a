// The cluster's pure parts: how a pipeline is cut into units, how resources become shard groups,
// how a follower reads the units' event files, and how the dashboard names a stage's worker.
import { Yaml } from "@crucible/core"
import { builtinRegistry } from "@crucible/strategies"
import { Effect, HashRing } from "effect"
import { RunnerAddress } from "effect/cluster"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import * as Follow from "../../src/cluster/Follow.ts"
import * as Placement from "../../src/cluster/Placement.ts"
import * as Resources from "../../src/cluster/Resources.ts"
import * as Units from "../../src/cluster/Units.ts"
import * as RunView from "../../src/ui/RunView.ts"
import * as StageCard from "../../src/ui/StageCard.ts"

const decode = (text: string) => Effect.runSync(Yaml.decode(text, builtinRegistry))

const pipeline = decode(`version: 1
name: u
stages:
  a:    { uses: load, with: { path: a.safetensors } }
  b:    { uses: load, with: { path: b.safetensors } }
  avg:  { uses: merge/linear, with: { models: [a, b] } }
  out:  { uses: save, with: { model: avg, path: out.safetensors } }
  out2: { uses: save, with: { model: avg, path: out2.safetensors, dtype: bfloat16 } }
  t:    { uses: train, with: { init: avg, data: mnist, epochs: 1 } }
  ev:   { uses: evaluate, with: { model: t, data: mnist } }
  back: { uses: load, with: { path: out.safetensors }, needs: [out] }
  ev2:  { uses: evaluate, with: { model: back, data: mnist } }
  idle: { uses: load, with: { path: c.safetensors } }
`)

describe("units", () => {
  it("a stored stage runs with the lazy stages it reads through; stored ancestors are units it waits for", () => {
    const units = Units.of(pipeline)
    const byId = new Map(units.map((u) => [u.id, u] as const))
    expect(units.map((u) => u.id)).toEqual(["idle", "out", "out2", "t", "ev", "ev2"])
    // The lazy chain load → merge runs in both saves that read it.
    expect(byId.get("out")).toMatchObject({ dependsOn: [], runs: ["a", "b", "avg", "out"], stages: ["a", "b", "avg", "out"] })
    expect(byId.get("out2")!.runs).toEqual(["a", "b", "avg", "out2"])
    // A training computes (stored): it starts from the lazy merge, which it runs itself.
    expect(byId.get("t")).toMatchObject({ dependsOn: [], runs: ["a", "b", "avg", "t"] })
    // An evaluation of the training waits for its unit and finds its result by key.
    expect(byId.get("ev")).toMatchObject({ dependsOn: ["t"], runs: ["ev"], stages: ["a", "b", "avg", "t", "ev"] })
    // A load of a saved file (after `needs: [out]`) runs with its reader, after the save's unit.
    expect(byId.get("ev2")).toMatchObject({ dependsOn: ["out"], runs: ["back", "ev2"], stages: ["a", "b", "avg", "out", "back", "ev2"] })
    // A lazy stage nothing reads is a unit of its own (its failure must still be seen).
    expect(byId.get("idle")).toMatchObject({ dependsOn: [], runs: ["idle"] })
    // Each unit's sub-pipeline keeps the IR's stages as written.
    expect(Units.subIr(pipeline.ir, byId.get("ev2")!).stages.map((s) => s.id)).toEqual(["a", "b", "avg", "out", "back", "ev2"])
  })
})

describe("resources as shard groups", () => {
  const GiB = 1024 ** 3
  it("a worker hosts its devices at every tier up to its memory; a stage goes to the smallest tier that holds it", () => {
    const worker = { devices: ["cpu"] as const, memoryBytes: 6 * GiB }
    expect(Resources.groupsOf({ devices: [...worker.devices], memoryBytes: worker.memoryBytes })).toEqual(["default", "cpu-512MiB", "cpu-1GiB", "cpu-2GiB", "cpu-4GiB"])
    expect(Resources.groupFor({ device: "cpu", memoryBytes: 3 * GiB })).toBe("cpu-4GiB")
    expect(Resources.groupFor({ device: "cpu", memoryBytes: 0 })).toBe("cpu-512MiB")
    expect(Resources.groupFor({ device: "gpu", memoryBytes: 1 * GiB })).toBe("gpu-1GiB")
    expect(Resources.fits({ devices: ["cpu"], memoryBytes: 6 * GiB }, { device: "cpu", memoryBytes: 4 * GiB })).toBe(true)
    expect(Resources.fits({ devices: ["cpu"], memoryBytes: 6 * GiB }, { device: "cpu", memoryBytes: 4 * GiB + 1 })).toBe(false)
    expect(Resources.fits({ devices: ["cpu"], memoryBytes: 64 * GiB }, { device: "gpu", memoryBytes: 0 })).toBe(false)
    expect(Resources.fits({ devices: ["cpu", "gpu"], memoryBytes: 64 * GiB }, { device: "gpu", memoryBytes: 0 })).toBe(true)
    // Below the smallest tier a worker hosts no stage's group; above the largest, no worker fits.
    expect(Resources.groupsOf({ devices: ["cpu"], memoryBytes: 100e6 })).toEqual(["default"])
    expect(Resources.groupFor({ device: "cpu", memoryBytes: 2 * 1024 * GiB })).toBeUndefined()
    // Every group a worker can host is one the cluster knows.
    for (const g of Resources.groupsOf({ devices: ["cpu", "gpu"], memoryBytes: 1024 * GiB })) expect(Resources.ALL_GROUPS).toContain(g)
    expect(Resources.parseDevices("cpu,gpu")).toEqual(["cpu", "gpu"])
    expect(Resources.parseDevices("tpu")).toBeUndefined()
  })
})

describe("spreading units over workers", () => {
  // A stand-in for the cluster's shard hash (any hash spreads ids over shards alike).
  const shardOf = (id: string) => (createHash("sha256").update(id).digest().readUInt32BE(0) % 16) + 1
  const runners = [
    { host: "10.0.0.1", port: 34431, groups: ["default", "cpu-512MiB", "cpu-1GiB"], weight: 1 },
    { host: "10.0.0.2", port: 34431, groups: ["default", "cpu-512MiB"], weight: 1 },
    { host: "10.0.0.3", port: 34431, groups: ["default", "cpu-512MiB"], weight: 1 }
  ]
  // Who the cluster's ring gives each entity id to, computed as the cluster does.
  const ownerOf = (group: string, id: string) => {
    const ring = HashRing.make<RunnerAddress.RunnerAddress>()
    for (const r of runners) if (r.groups.includes(group)) HashRing.add(ring, RunnerAddress.make(r.host, r.port), { weight: r.weight })
    const a = HashRing.getShards(ring, 16)![shardOf(id) - 1]!
    return `${a.host}:${a.port}`
  }

  it("gives each worker of a group its turn, in the order units come, through entity ids the cluster's ring places there", () => {
    const units = Array.from({ length: 12 }, (_, i) => ({ id: `ft${String(i).padStart(2, "0")}`, group: "cpu-512MiB" }))
    const ids = Placement.spread("r1", [...units, { id: "big", group: "cpu-1GiB" }], runners, 16, shardOf)
    const owners = units.map((u) => ownerOf("cpu-512MiB", ids.get(u.id)!))
    const counts = new Map<string, number>()
    for (const o of owners) counts.set(o, (counts.get(o) ?? 0) + 1)
    expect([...counts.values()]).toEqual([4, 4, 4])
    // Every three consecutive units are on three different workers.
    for (let i = 0; i + 3 <= owners.length; i += 3) expect(new Set(owners.slice(i, i + 3)).size).toBe(3)
    for (const u of units) expect(ids.get(u.id)).toMatch(new RegExp(`^cpu-512MiB:r1/${u.id}(#\\d+)?$`))
    // A group only one worker hosts: the plain id (the suffix could not change where it goes).
    expect(ids.get("big")).toBe("cpu-1GiB:r1/big")
  })
})

describe("following a run from the store", () => {
  it("passes on each unit's own stages' events once, waits for a line's end, and tells a rerun's folder by its number", () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-follow-"))
    const units = [{ id: "out", runs: ["a", "avg", "out"] }, { id: "out2", runs: ["a", "avg", "out2"] }, { id: "t", runs: ["t"] }]
    const write = (unit: string, lines: ReadonlyArray<object>, tail = "") => {
      fs.mkdirSync(path.join(folder, unit), { recursive: true })
      fs.appendFileSync(path.join(folder, unit, "events.jsonl"), lines.map((l) => `${JSON.stringify(l)}\n`).join("") + tail)
    }
    const started = (stage: string) => ({ type: "stage-started", time: 1, stage, kind: "k" })
    const finished = (stage: string) => ({ type: "stage-finished", time: 2, stage, kind: "k", status: "succeeded", durationMs: 1 })
    const follower = Follow.make(folder, units)
    write("out", [{ type: "run-started" }, started("a"), finished("a"), started("out")], `{"type":"stage-fin`)
    // A stage a unit found stored (out, in t's run) is not its own: not passed on.
    write("t", [started("out"), finished("out"), started("t")])
    const first = Effect.runSync(follower.poll)
    expect(first.map((e) => `${e.type}:${"stage" in e ? e.stage : ""}`)).toEqual(["stage-started:a", "stage-finished:a", "stage-started:out", "stage-started:t"])
    fs.appendFileSync(path.join(folder, "out", "events.jsonl"), `ished","time":3,"stage":"out","kind":"save","status":"succeeded","durationMs":2}\n`)
    // out2 runs the same lazy `a` again: its start and end were told already.
    write("out2", [started("a"), finished("a"), started("out2")])
    // t's worker died; its rerun's folder is t-2.
    write("t-2", [started("t"), finished("t")])
    const second = Effect.runSync(follower.poll)
    expect(second.map((e) => `${e.type}:${"stage" in e ? e.stage : ""}`)).toEqual(["stage-finished:out", "stage-started:out2", "stage-finished:t"])
    expect(Effect.runSync(follower.poll)).toEqual([])
    expect(Follow.unitOfFolder(units, "t-12")).toBe("t")
    expect(Follow.unitOfFolder(units, "t-x")).toBeUndefined()
    fs.rmSync(folder, { recursive: true, force: true })
  })
})

describe("the dashboard", () => {
  it("names the worker that ran a stage of a cluster run", () => {
    const view = RunView.make({
      manifest: {
        runId: "r",
        status: "succeeded",
        startedAt: new Date(0).toISOString(),
        pipeline: { name: "p", ir: { stages: [{ id: "t", uses: "train", with: {} }] } },
        stages: [{ id: "t", kind: "train", status: "succeeded", durationMs: 5, worker: "w2" }]
      },
      events: [],
      eventCount: 0,
      spans: [],
      spansFrom: "events"
    })
    expect(StageCard.stageCard(view.stages[0]!, 0, { artifact: () => "" })).toContain('<span class="meta" data-worker="w2">on w2</span>')
  })
})
