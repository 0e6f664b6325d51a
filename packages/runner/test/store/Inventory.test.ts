// The store's inventory and gc on a hand-built store (results written as Layout says, last uses
// set with utimes), with real processes for locks and owners: a lock held by a live child is
// never collected; temporaries of a SIGKILLed process are, those of a live one are not.
import { Owner } from "@crucible/core"
import { Effect, Result } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import * as Inventory from "../../src/store/Inventory.ts"
import * as Layout from "../../src/store/Layout.ts"
import { deadOwner, lockChild } from "./children.ts"

const DAY = 86_400_000
const NOW = Date.now()
let root: string

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-inventory-"))
})
afterEach(() => fs.rmSync(root, { recursive: true, force: true }))

/** A stored result of `bytes` payload bytes, last used `daysAgo` days ago. */
const putResult = (key: string, options: { readonly bytes: number; readonly daysAgo: number; readonly type?: Layout.ResultRecord["type"]; readonly stage?: string }) => {
  const type = options.type ?? "model"
  fs.mkdirSync(Layout.resultDir(root, key), { recursive: true })
  fs.writeFileSync(path.join(Layout.resultDir(root, key), type === "metrics" ? Layout.METRICS_FILE : Layout.MODEL_FILE), Buffer.alloc(options.bytes))
  const record: Layout.ResultRecord = {
    crucible: { resultVersion: 1 },
    key,
    kind: type === "metrics" ? "evaluate" : "merge/linear",
    version: 1,
    stage: options.stage ?? key.slice(0, 4),
    runId: "r1",
    pipeline: "p",
    type,
    createdAt: new Date(NOW - 30 * DAY).toISOString(),
    bytes: options.bytes
  }
  fs.writeFileSync(Layout.resultFile(root, key), JSON.stringify(record))
  const t = new Date(NOW - options.daysAgo * DAY)
  fs.utimesSync(Layout.resultFile(root, key), t, t)
}

const recordBytes = (key: string) => fs.statSync(Layout.resultFile(root, key)).size
const keys = (n: number) => Array.from({ length: n }, (_, i) => `${String(i).repeat(4)}${"ab".repeat(30)}`.slice(0, 64))
const gc = (options: Inventory.GcOptions = {}) => Effect.runPromise(Inventory.gc(root, { now: NOW, ...options }))
const stored = () => fs.readdirSync(path.join(root, Layout.RESULTS)).sort()

describe("list and usage", () => {
  it("lists results most recently used first, measured on disk, and sums the store by part", async () => {
    const [a, b, c] = keys(3) as [string, string, string]
    putResult(a, { bytes: 1000, daysAgo: 3 })
    putResult(b, { bytes: 200, daysAgo: 1, type: "metrics" })
    putResult(c, { bytes: 50, daysAgo: 9 })
    fs.mkdirSync(Layout.workDir(root, "k-work"), { recursive: true })
    fs.writeFileSync(path.join(Layout.workDir(root, "k-work"), "epoch-0001.safetensors"), Buffer.alloc(300))
    fs.mkdirSync(path.join(Layout.tmpDir(root), Owner.temporaryName("result")), { recursive: true })
    fs.mkdirSync(Layout.digestsDir(root), { recursive: true })
    fs.writeFileSync(path.join(Layout.digestsDir(root), "d.json"), Buffer.alloc(7))

    const entries = await Effect.runPromise(Inventory.list(root))
    expect(entries.map((e) => e.key)).toEqual([b, a, c])
    expect(entries[1]).toMatchObject({ key: a, kind: "merge/linear", type: "model", bytes: 1000 + recordBytes(a), dir: Layout.resultDir(root, a) })
    expect(entries[1]!.lastUsed).toBeCloseTo(NOW - 3 * DAY, -3)

    const usage = await Effect.runPromise(Inventory.usage(root))
    expect(usage.results).toEqual({ bytes: 1250 + recordBytes(a) + recordBytes(b) + recordBytes(c), count: 3, byType: { model: 1050 + recordBytes(a) + recordBytes(c), metrics: 200 + recordBytes(b) } })
    expect(usage).toMatchObject({ work: 300, tmp: 0, digests: 7, other: 0 })
    expect(usage.total).toBe(usage.results.bytes + 307)
  })

  it("reads an empty or missing store as empty", async () => {
    expect(await Effect.runPromise(Inventory.list(path.join(root, "none")))).toEqual([])
    expect((await Effect.runPromise(Inventory.usage(path.join(root, "none")))).total).toBe(0)
  })
})

describe("gc", () => {
  it("--older-than removes results unused for longer and work folders untouched for longer; a dry run removes nothing", async () => {
    const [fresh, old, older] = keys(3) as [string, string, string]
    putResult(fresh, { bytes: 100, daysAgo: 1 })
    putResult(old, { bytes: 100, daysAgo: 8 })
    putResult(older, { bytes: 100, daysAgo: 20 })
    for (const [key, daysAgo] of [["w-old", 10], ["w-new", 0]] as const) {
      const dir = Layout.workDir(root, key)
      fs.mkdirSync(dir, { recursive: true })
      fs.writeFileSync(path.join(dir, "epoch-0001.safetensors"), Buffer.alloc(10))
      const t = new Date(NOW - daysAgo * DAY)
      fs.utimesSync(path.join(dir, "epoch-0001.safetensors"), t, t)
      fs.utimesSync(dir, t, t)
    }

    const dry = await gc({ olderThanMs: 7 * DAY, dryRun: true })
    expect(dry.removed.map((r) => [r.what, r.key])).toEqual([["result", older], ["result", old], ["work", "w-old"]])
    expect(stored()).toHaveLength(3)
    expect(fs.existsSync(Layout.workDir(root, "w-old"))).toBe(true)

    const done = await gc({ olderThanMs: 7 * DAY })
    expect(done.removed.map((r) => [r.what, r.key])).toEqual(dry.removed.map((r) => [r.what, r.key]))
    expect(done.freed).toBe(200 + recordBytes(fresh) * 2 + 10)
    expect(stored()).toEqual([fresh])
    expect(fs.readdirSync(path.join(root, Layout.WORK))).toEqual(["w-new"])
    // Removed via tmp: nothing of them is left there.
    expect(fs.readdirSync(Layout.tmpDir(root))).toEqual([])
  })

  it("--max-size removes the least recently used results until the results fit", async () => {
    const ks = keys(4)
    ks.forEach((key, i) => putResult(key, { bytes: 1000, daysAgo: [5, 1, 9, 3][i]! }))
    const each = 1000 + recordBytes(ks[0]!)
    const report = await gc({ maxSize: 2 * each })
    // Last used 9, then 5 days ago.
    expect(report.removed.map((r) => r.key)).toEqual([ks[2], ks[0]])
    expect(report.resultsBytes).toBe(2 * each)
    expect(stored()).toEqual([ks[1], ks[3]].sort())
  })

  it("never removes a result or work folder whose lock a live process holds, and removes them once it is dead", async () => {
    const [locked, free] = keys(2) as [string, string]
    putResult(locked, { bytes: 100, daysAgo: 30 })
    putResult(free, { bytes: 100, daysAgo: 30 })
    fs.mkdirSync(Layout.workDir(root, locked), { recursive: true })
    const t = new Date(NOW - 30 * DAY)
    fs.utimesSync(Layout.workDir(root, locked), t, t)
    const child = await lockChild(Layout.lockFile(root, locked), { runId: "r9", stage: "train" })
    try {
      const report = await gc({ olderThanMs: DAY, maxSize: 1 })
      expect(report.removed.map((r) => r.key)).toEqual([free])
      expect(report.kept).toEqual([
        { path: Layout.resultDir(root, locked), reason: `locked by live process ${child.owner.pid} (run r9, stage train)` },
        { path: Layout.workDir(root, locked), reason: `locked by live process ${child.owner.pid} (run r9, stage train)` }
      ])
      expect(stored()).toEqual([locked])
    } finally {
      await child.kill()
    }
    // Its holder dead, the lock is debris: removed with what it protected.
    const after = await gc({ olderThanMs: DAY })
    expect(after.removed.map((r) => [r.what, r.key])).toEqual([["lock", locked], ["result", locked], ["work", locked]])
    expect(fs.readdirSync(path.join(root, "locks"))).toEqual([])
  })

  it("with neither flag removes only debris: temporaries of dead owners, not those of live ones, and no result", async () => {
    const [old] = keys(1) as [string]
    putResult(old, { bytes: 100, daysAgo: 365 })
    const dead = await deadOwner()
    const deadTmp = path.join(Layout.tmpDir(root), `result.${Owner.token(dead)}.0123456789ab`)
    const liveTmp = path.join(Layout.tmpDir(root), Owner.temporaryName("result"))
    for (const dir of [deadTmp, liveTmp]) {
      fs.mkdirSync(dir, { recursive: true })
      fs.writeFileSync(path.join(dir, Layout.MODEL_FILE), Buffer.alloc(64))
    }
    const report = await gc()
    expect(report.removed).toEqual([{ what: "tmp", path: deadTmp, bytes: 64, reason: `its owner (pid ${dead.pid}) is dead` }])
    expect(fs.readdirSync(Layout.tmpDir(root))).toEqual([path.basename(liveTmp)])
    expect(stored()).toEqual([old])
  })
})

describe("parseAge", () => {
  it("reads minutes, hours, days and weeks, and says what it expects otherwise", () => {
    expect(Inventory.parseAge("30m")).toEqual(Result.succeed(30 * 60_000))
    expect(Inventory.parseAge("12h")).toEqual(Result.succeed(12 * 3_600_000))
    expect(Inventory.parseAge("7d")).toEqual(Result.succeed(7 * DAY))
    expect(Inventory.parseAge("2w")).toEqual(Result.succeed(14 * DAY))
    for (const bad of ["7", "7x", "-1d", "0d", "d"]) {
      const parsed = Inventory.parseAge(bad)
      expect(Result.isFailure(parsed) && parsed.failure.message).toMatch(/like "30m", "12h", "7d" or "2w"/)
    }
  })
})
