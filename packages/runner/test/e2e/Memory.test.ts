import { describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), "memory-child.ts")

describe("streaming merge memory", () => {
  it("merges 3 models of 200 MB with under 170 MB above the process baseline", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-mem-"))
    try {
      // One merge thread: the bound is the streaming one (chunks, not models). Worker threads add a
      // constant per thread that does not grow with the models (~30 MB each in the CLI bundle,
      // ~80 MB from the sources this child runs).
      const env = { ...process.env, CRUCIBLE_MERGE_THREADS: "1" }
      const r = spawnSync(process.execPath, ["--expose-gc", child, dir], { encoding: "utf8", timeout: 120_000, env })
      expect(r.stderr).toBe("")
      const m = JSON.parse(r.stdout.trim().split("\n").at(-1)!)
      console.log(`merge of 3×${m.inputMB.toFixed(0)} MB: baseline ${m.baselineMB.toFixed(0)} MB, peak ${m.peakMB.toFixed(0)} MB, +${m.aboveMB.toFixed(0)} MB`)
      expect(m.status).toBe("succeeded")
      expect(m.inputMB).toBeGreaterThan(195)
      // The stream's arena: four sets (one summed, three read ahead) of three 4 MiB input slots and
      // the output, 52 MiB; the writer's three chunk buffers; the rest is the runtime's churn.
      expect(m.aboveMB).toBeLessThan(170)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)
})
