// `crucible cache ls|du|gc` through the installed CLI on a hand-built store under <runs>/.cache.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Layout from "../../src/store/Layout.ts"
import { crucible } from "./cli.ts"

const DAY = 86_400_000
let dir: string
let runsDir: string
let root: string
const fresh = `aa${"0".repeat(62)}`
const stale = `bb${"1".repeat(62)}`

const put = (key: string, stage: string, daysAgo: number) => {
  fs.mkdirSync(Layout.resultDir(root, key), { recursive: true })
  fs.writeFileSync(path.join(Layout.resultDir(root, key), Layout.MODEL_FILE), Buffer.alloc(2000))
  const record: Layout.ResultRecord = {
    crucible: { resultVersion: 1 }, key, kind: "merge/linear", version: 1, stage, runId: "r1", pipeline: "p", type: "model",
    createdAt: new Date(Date.now() - 40 * DAY).toISOString(), bytes: 2000
  }
  fs.writeFileSync(Layout.resultFile(root, key), JSON.stringify(record))
  const t = new Date(Date.now() - daysAgo * DAY)
  fs.utimesSync(Layout.resultFile(root, key), t, t)
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-cache-cli-"))
  runsDir = path.join(dir, "runs")
  root = path.join(runsDir, ".cache")
  put(fresh, "avg", 1)
  put(stale, "ties", 10)
})
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

describe("crucible cache", () => {
  it("ls lists the results, most recently used first, as a table or JSON", () => {
    const table = crucible(["cache", "ls", "--runs-dir", runsDir])
    expect(table.code).toBe(0)
    const rows = table.stdout.trim().split("\n")
    expect(rows[0]).toMatch(/^key +kind +stage +type +size +created +last used$/)
    expect(rows[2]).toMatch(new RegExp(`^${fresh.slice(0, 12)} +merge/linear +avg +model +2\\.\\d+ KB `))
    expect(rows[3]).toMatch(new RegExp(`^${stale.slice(0, 12)} +merge/linear +ties `))
    const json = crucible(["cache", "ls", "--runs-dir", runsDir, "--json"])
    expect((JSON.parse(json.stdout) as Array<{ key: string }>).map((e) => e.key)).toEqual([fresh, stale])
  })

  it("du sums the store by part", () => {
    const usage = JSON.parse(crucible(["cache", "du", "--runs-dir", runsDir, "--json"]).stdout) as { results: { count: number; byType: Record<string, number> }; total: number }
    expect(usage.results.count).toBe(2)
    expect(usage.results.byType.model).toBeGreaterThan(4000)
    expect(crucible(["cache", "du", "--runs-dir", runsDir]).stdout).toMatch(/^results +\d.* KB {2}2 results: model .*\ntotal +/ms)
  })

  it("gc --older-than removes what was unused for longer (a dry run first), and refuses a bad age or size", () => {
    const dry = crucible(["cache", "gc", "--runs-dir", runsDir, "--older-than", "7d", "--dry-run"])
    expect(dry.code).toBe(0)
    expect(dry.stdout).toMatch(new RegExp(`^would remove result ${stale.slice(0, 12)} \\(merge/linear\\) 2\\.\\d+ KB: unused for 10 d\\nwould free 2\\.\\d+ KB; results now 2\\.\\d+ KB\\n$`))
    expect(fs.existsSync(Layout.resultDir(root, stale))).toBe(true)
    const done = crucible(["cache", "gc", "--runs-dir", runsDir, "--older-than", "7d"])
    expect(done.stdout).toMatch(/^removed result bb1111111111 .*\nfreed /)
    expect(fs.readdirSync(path.join(root, Layout.RESULTS))).toEqual([fresh])
    const nothing = crucible(["cache", "gc", "--runs-dir", runsDir])
    expect(nothing.stdout).toMatch(/^freed 0 B \(nothing to remove\)/)
    const badAge = crucible(["cache", "gc", "--runs-dir", runsDir, "--older-than", "7 days"])
    expect([badAge.code, badAge.stderr]).toEqual([2, expect.stringContaining(`--older-than: invalid age "7 days"`)])
    const badSize = crucible(["cache", "gc", "--runs-dir", runsDir, "--max-size", "20XB"])
    expect([badSize.code, badSize.stderr]).toEqual([2, expect.stringContaining(`--max-size: invalid byte size "20XB"`)])
  })
})
