// A manifest's status as views show it: `running` with a dead owner (a SIGKILLed child) is
// `crashed`; with a live owner (this process), or without an owner (older runs), as written.
import { Owner, type Validate } from "@crucible/core"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import type { StageOutcome } from "../src/Executor.ts"
import * as Manifest from "../src/Manifest.ts"
import { deadOwner } from "./store/children.ts"

describe("effectiveStatus", () => {
  it("reads a running manifest whose owner was killed as crashed, and one of a live owner as running", async () => {
    const dead = await deadOwner()
    expect(Owner.isAlive(dead)).toBe(false)
    expect(Manifest.effectiveStatus({ status: "running", owner: dead })).toBe("crashed")
    expect(Manifest.effectiveStatus({ status: "running", ...Manifest.ownerNow() })).toBe("running")
    expect(Manifest.effectiveStatus({ status: "running" })).toBe("running")
    // Only a running manifest can have crashed: an ended run's owner is expected to be gone.
    for (const status of ["succeeded", "failed", "interrupted"] as const) expect(Manifest.effectiveStatus({ status, owner: dead })).toBe(status)
  })

  it("reads a manifest file back as the runner wrote it", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-manifest-"))
    try {
      const file = path.join(dir, "manifest.json")
      fs.writeFileSync(file, JSON.stringify({ runId: "r", status: "running", owner: Owner.current(), stages: [] }))
      const read = await Effect.runPromise(Manifest.read(file))
      expect(read.owner).toEqual(Owner.current())
      expect(Manifest.effectiveStatus(read)).toBe("running")
      const missing = await Effect.runPromise(Effect.flip(Manifest.read(path.join(dir, "none.json"))))
      expect(missing._tag).toBe("IoError")
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe("stageRecords", () => {
  it("carries cached and sameAs when they are set, and nothing otherwise", () => {
    const pipeline = { stages: [] } as unknown as Validate.ResolvedPipeline
    const outcome = (id: string, extra: Partial<StageOutcome>): StageOutcome => ({ id, kind: "train", version: 1, key: `k-${id}`, status: "succeeded", ...extra })
    const records = Manifest.stageRecords(pipeline, [outcome("a", { cached: true }), outcome("b", { sameAs: "a" }), outcome("c", { cached: false })])
    expect(records.map((r) => [r.id, r.cached, r.sameAs])).toEqual([["a", true, undefined], ["b", undefined, "a"], ["c", undefined, undefined]])
    expect(Object.keys(records[2]!)).not.toContain("cached")
  })
})
