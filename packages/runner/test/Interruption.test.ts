import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import type { StageOutcome } from "../src/Executor.ts"
import * as Interruption from "../src/Interruption.ts"
import * as Layout from "../src/store/Layout.ts"

describe("Interruption.event", () => {
  it("sorts stages by what happened to them and lists stored results and work folders that hold checkpoints", () => {
    const cacheRoot = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-interrupt-"))
    try {
      // A finished stage's result is stored (its work folder is gone); a stopped one left checkpoints.
      fs.mkdirSync(Layout.resultDir(cacheRoot, "k-done"), { recursive: true })
      fs.writeFileSync(Layout.resultFile(cacheRoot, "k-done"), "{}")
      fs.mkdirSync(Layout.workDir(cacheRoot, "k-stopped"), { recursive: true })
      fs.writeFileSync(path.join(Layout.workDir(cacheRoot, "k-stopped"), "epoch-0001.safetensors"), "")
      fs.mkdirSync(Layout.workDir(cacheRoot, "k-empty"), { recursive: true })
      // A folder at the old place (`<cacheRoot>/<key>`) is not a result.
      fs.mkdirSync(path.join(cacheRoot, "k-later"))
      fs.writeFileSync(path.join(cacheRoot, "k-later", "epoch-0001.safetensors"), "")
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
          { stage: "done", kind: "train", dir: Layout.resultFile(cacheRoot, "k-done"), use: "reused" },
          { stage: "stopped", kind: "train", dir: Layout.workDir(cacheRoot, "k-stopped"), use: "resumed" }
        ]
      })
    } finally {
      fs.rmSync(cacheRoot, { recursive: true, force: true })
    }
  })
})
