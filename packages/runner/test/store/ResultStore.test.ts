// The store's sweep at a run's start removes dead runs' debris, never a live run's work.
import { describe, expect, it } from "vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Layout from "../../src/store/Layout.ts"
import * as ResultStore from "../../src/store/ResultStore.ts"

const producer = (key: string): Layout.Producer => ({ key, kind: "train", version: 1, stage: "t", runId: "live-run", pipeline: "p" })

describe("ResultStore.sweep", () => {
  it("keeps the checkpoints of a key whose lock a live run holds (a --no-cache run computing a stored key again), removes spent ones", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "store-sweep-"))
    const [live, spent] = ["a".repeat(64), "b".repeat(64)]
    for (const key of [live, spent]) {
      fs.mkdirSync(Layout.resultDir(root, key), { recursive: true })
      fs.writeFileSync(Layout.resultFile(root, key), "{}")
      fs.mkdirSync(Layout.workDir(root, key), { recursive: true })
      fs.writeFileSync(path.join(Layout.workDir(root, key), "checkpoint.json"), "{}")
    }
    await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
      const store = yield* ResultStore.make(root)
      yield* store.lock(producer(live), () => Effect.void)
      yield* store.sweep
    })))
    expect(fs.existsSync(path.join(Layout.workDir(root, live), "checkpoint.json"))).toBe(true)
    expect(fs.existsSync(Layout.workDir(root, spent))).toBe(false)
  })
})
