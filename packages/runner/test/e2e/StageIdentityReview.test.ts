// Review of stage identity (issue 13): a stored result that cannot be read back is computed again
// under its key's lock; metrics that JSON cannot hold come back as computed.
import { describe, expect, it } from "vitest"
import { LockFile, Port, Registry, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Runner from "../../src/Runner.ts"
import * as Layout from "../../src/store/Layout.ts"

// A metrics stage that reports whether its key's lock was held while it ran, and `value` as measured.
const heldWhileRunning: Array<boolean> = []
const Probe = Stage.define({
  kind: "review/probe",
  version: 1,
  description: "metrics, noting whether the key's lock is held",
  params: Schema.Struct({ value: Schema.Number }),
  inputs: {},
  output: Port.MetricsPort,
  run: ({ params, cacheDir }) =>
    Effect.sync(() => {
      // cacheDir is <root>/work/<key>: the lock is <root>/locks/<key>.lock.
      const root = path.dirname(path.dirname(cacheDir))
      heldWhileRunning.push(LockFile.holder(Layout.lockFile(root, path.basename(cacheDir))) !== undefined)
      return { values: { value: params.value, curve: [params.value, 1] } }
    })
})

// A metrics stage that always fails.
const Broken = Stage.define({
  kind: "review/broken",
  version: 1,
  description: "fails",
  params: Schema.Struct({ value: Schema.Number }),
  inputs: {},
  output: Port.MetricsPort,
  run: () => Effect.die(new Error("broken on purpose"))
})

const kinds = Registry.make([Probe, Broken])
const pipeline = (value: string) => `version: 1
name: review
stages:
  p: { uses: review/probe, with: { value: ${value} } }
`

// Two stages of one kind with equal params: equal keys.
const twins = (ids: ReadonlyArray<string>, kind: string, value: number) => `version: 1
name: twins
stages:
${ids.map((id) => `  ${id}: { uses: ${kind}, with: { value: ${value} } }`).join("\n")}
`

const inFolder = (yaml: string) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "identity-review-"))
  fs.writeFileSync(path.join(dir, "p.yaml"), yaml)
  const runsDir = path.join(dir, "runs")
  return { file: path.join(dir, "p.yaml"), runsDir, root: path.join(runsDir, ".cache") }
}
const setup = (value: string) => inFolder(pipeline(value))

const run = (file: string, runsDir: string) => Runner.runPromise(file, { telemetry: "none", runsDir, kinds })

describe("stage identity, reviewed", () => {
  it("computes a stored result that cannot be read back again while holding its key's lock", async () => {
    const { file, runsDir, root } = setup("0.5")
    heldWhileRunning.length = 0
    const first = await run(file, runsDir)
    expect(first.status).toBe("succeeded")
    const key = first.outcomes[0]!.key
    // The payload is gone, its record stays: lookup finds it, restore fails.
    fs.rmSync(path.join(Layout.resultDir(root, key), Layout.METRICS_FILE))
    const second = await run(file, runsDir)
    expect(second.status).toBe("succeeded")
    expect(second.outcomes[0]!.cached).toBeUndefined()
    expect(heldWhileRunning).toEqual([true, true])
    // Released at the end; the result stored again.
    expect(LockFile.holder(Layout.lockFile(root, key))).toBeUndefined()
    expect(fs.existsSync(path.join(Layout.resultDir(root, key), Layout.METRICS_FILE))).toBe(true)
  })

  it("restores NaN and ±Infinity metrics as computed, not as null", async () => {
    const { file, runsDir } = setup(".nan")
    const first = await run(file, runsDir)
    const again = await run(file, runsDir)
    expect(again.outcomes[0]!.cached).toBe(true)
    expect(again.outcomes[0]!.value).toEqual(first.outcomes[0]!.value)
    expect((again.outcomes[0]!.value as Port.Metrics).values.value).toBeNaN()

    const inf = setup(".inf")
    await run(inf.file, inf.runsDir)
    const infAgain = await run(inf.file, inf.runsDir)
    expect(infAgain.outcomes[0]!.cached).toBe(true)
    expect(infAgain.outcomes[0]!.value).toEqual({ values: { value: Infinity, curve: [Infinity, 1] } })
  })

  it("succeeds when its spent checkpoints cannot be removed (a store's work folder that is not writable)", async () => {
    const { file, runsDir, root } = setup("2")
    // Removing anything under work/ fails (ENOTDIR), as it does in a read-only store (EROFS).
    fs.mkdirSync(root, { recursive: true })
    fs.writeFileSync(path.join(root, Layout.WORK), "")
    const stored = await run(file, runsDir)
    expect(stored.status).toBe("succeeded")
    expect(fs.existsSync(Layout.resultFile(root, stored.outcomes[0]!.key))).toBe(true)
    const fresh = await Runner.runPromise(file, { telemetry: "none", runsDir, kinds, cache: false })
    expect(fresh.status).toBe("succeeded")
  })

  it("--rerun of a stage that took an equal earlier stage's value computes that value afresh", async () => {
    const { file, runsDir } = inFolder(twins(["p1", "p2"], "review/probe", 3))
    await run(file, runsDir)
    const again = await Runner.runPromise(file, { telemetry: "none", runsDir, kinds, rerun: ["p2"] })
    expect(again.outcomes.map((o) => [o.id, o.cached, o.sameAs])).toEqual([["p1", undefined, undefined], ["p2", undefined, "p1"]])
  })

  it("a stage whose equal earlier stage failed is skipped because of it, and says it took that stage's value", async () => {
    const { file, runsDir } = inFolder(twins(["b1", "b2"], "review/broken", 1))
    const result = await run(file, runsDir)
    expect(result.outcomes.map((o) => [o.id, o.status, o.blockedBy, o.sameAs])).toEqual([["b1", "failed", undefined, undefined], ["b2", "skipped", "b1", "b1"]])
    const manifest = JSON.parse(fs.readFileSync(path.join(result.runDir, "manifest.json"), "utf8"))
    expect(manifest.stages.find((s: { id: string }) => s.id === "b2")).toMatchObject({ status: "skipped", sameAs: "b1" })
  })
})
