import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import type { StageOutcome } from "../src/Executor.ts"
import * as Interruption from "../src/Interruption.ts"

describe("Interruption.event", () => {
  it("sorts stages by what happened to them and lists those whose cache folder holds state", () => {
    const cacheRoot = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-interrupt-"))
    try {
      fs.mkdirSync(path.join(cacheRoot, "k-done"))
      fs.writeFileSync(path.join(cacheRoot, "k-done", "epoch-0004.safetensors"), "")
      fs.mkdirSync(path.join(cacheRoot, "k-stopped"))
      fs.writeFileSync(path.join(cacheRoot, "k-stopped", "epoch-0001.safetensors"), "")
      fs.mkdirSync(path.join(cacheRoot, "k-empty"))
      const outcome = (id: string, kind: string, key: string, status: StageOutcome["status"]): StageOutcome => ({ id, kind, key, version: 1, status })
      const started = Interruption.startedStages()
      for (const stage of ["done", "stopped", "empty", "broke"]) started.observe({ type: "stage-started", time: 0, stage, kind: "train" })
      const event = Interruption.event({
        outcomes: [
          outcome("done", "train", "k-done", "succeeded"),
          outcome("broke", "merge/ties", "k-broke", "failed"),
          outcome("after", "save", "k-after", "skipped"),
          outcome("stopped", "train", "k-stopped", "interrupted"),
          outcome("empty", "train", "k-empty", "interrupted"),
          outcome("later", "evaluate", "k-later", "interrupted")
        ],
        started,
        runDir: "/runs/r",
        cacheRoot,
        durationMs: 1234,
        time: 99
      })
      expect(event).toEqual({
        type: "run-interrupted",
        time: 99,
        runDir: "/runs/r",
        durationMs: 1234,
        finished: [{ stage: "done", kind: "train" }],
        failed: [{ stage: "broke", kind: "merge/ties" }, { stage: "after", kind: "save" }],
        interrupted: [{ stage: "stopped", kind: "train" }, { stage: "empty", kind: "train" }],
        notStarted: [{ stage: "later", kind: "evaluate" }],
        saved: [
          { stage: "done", kind: "train", dir: path.join(cacheRoot, "k-done"), use: "reused" },
          { stage: "stopped", kind: "train", dir: path.join(cacheRoot, "k-stopped"), use: "resumed" }
        ]
      })
    } finally {
      fs.rmSync(cacheRoot, { recursive: true, force: true })
    }
  })
})
