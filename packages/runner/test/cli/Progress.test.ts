// Progress bars: one measure per bar (fill and text agree), an ETA from bytes done and time since
// the first report, and the TTY reporter's one bar per stage in progress.
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import type { RunEvent } from "../../src/Events.ts"
import * as Progress from "../../src/cli/Progress.ts"
import * as Reporters from "../../src/cli/Reporters.ts"
import * as Dag from "../../src/ui/Dag.ts"

describe("one measure per bar", () => {
  it("counts bytes when a report has them, whatever its own unit, and its own unit otherwise", () => {
    // A save's report: 3 of 4 tensors written, but the last tensor holds 97% of the bytes.
    const save = { done: 3, total: 4, unit: "tensors", bytes: 3_000_000, totalBytes: 100_000_000 }
    expect(Progress.amount(save)).toEqual({ done: 3_000_000, total: 100_000_000, unit: "bytes" })
    expect(Progress.fraction(Progress.amount(save))).toBe(0.03)
    expect(Progress.text(Progress.amount(save))).toBe("3.00 MB/100 MB")
    // A lazy stage's report is in bytes already.
    expect(Progress.text(Progress.amount({ done: 12_600_000, total: 50_300_000, unit: "bytes" }))).toBe("12.6 MB/50.3 MB")
    expect(Progress.text(Progress.amount({ done: 3, total: 10, unit: "epochs" }))).toBe("3/10 epochs")
    expect(Progress.fraction(Progress.amount({ done: 3, total: 0, unit: "steps" }))).toBeUndefined()
  })

  it("fills the dashboard's bar by the same measure as its text", () => {
    expect(Dag.fractionDone({ done: 3, total: 4, unit: "tensors", bytes: 25, totalBytes: 100 })).toBe(0.25)
    expect(Dag.fractionDone({ done: 1, total: 4, unit: "epochs" })).toBe(0.25)
  })

  it("draws the TTY line from that measure: the bar's fill matches its text", () => {
    const line = Progress.line({ stage: "out", done: 1, total: 4, unit: "tensors", bytes: 50_000_000, totalBytes: 100_000_000, detail: "w1" }, 3_000, 10)
    expect(line).toBe("  out [█████░░░░░] 50.0 MB/100 MB ETA 3.00 s w1")
  })
})

describe("the ETA", () => {
  it("waits for a warm-up after the first report, and for work done since", () => {
    const first = { time: 0, done: 10 }
    expect(Progress.eta(first, { time: 1000, done: 50 }, 100)).toBeUndefined()
    expect(Progress.eta(first, { time: 2000, done: 10 }, 100)).toBeUndefined()
    expect(Progress.eta(first, { time: 2000, done: 100 }, 100)).toBeUndefined()
    expect(Progress.eta(first, { time: 2000, done: 50 }, 100)).toBe(2500)
    expect(Progress.etaText(undefined)).toBe("")
    expect(Progress.etaText(65_000)).toBe(" ETA 1 min 5 s")
  })

  it("is not thrown off by a slow start: a 16 s save whose first tensor took 4 s", () => {
    // 16 tensors of 1 MB: the first after 4 s (pool start-up, a merge's first tensor), then one every 0.8 s.
    const reports = Array.from({ length: 16 }, (_, i) => ({ time: 4000 + i * 800, done: (i + 1) * 1_000_000 }))
    const total = 16_000_000
    const first = reports[0]!
    for (const r of reports.slice(3, 15)) {
      const left = Progress.eta(first, r, total)!
      const truth = 4000 + 15 * 800 - r.time
      expect(Math.abs(left - truth)).toBeLessThan(1)
    }
    // After 2 tensors the old estimate (elapsed since the stage started, per tensor) said
    // 4.8 s·(14/2) ≈ 34 s for 11.2 s left: now nothing is shown during the warm-up, then the truth.
    expect(Progress.eta(first, reports[1]!, total)).toBeUndefined()
    expect(Progress.eta(first, reports[2]!, total)).toBeCloseTo(4000 + 15 * 800 - reports[2]!.time, 0)
  })
})

describe("the TTY reporter", () => {
  const progress = (stage: string, time: number, done: number): RunEvent => ({ type: "stage-progress", time, stage, done, total: 100, unit: "bytes" })

  it("keeps one bar per stage in progress, redrawn in place, and removes a stage's bar when it ends", () => {
    let out = ""
    const reporter = Reporters.make("tty", (t) => (out += t), () => 200)
    const emit = (e: RunEvent) => Effect.runSync(reporter.emit(e))
    emit(progress("m", 1000, 10))
    emit(progress("out", 1100, 20))
    // Two bars: the second drawn below the first after clearing the one line drawn before.
    expect(out).toBe(`${Progress.line({ stage: "m", done: 10, total: 100, unit: "bytes" }, undefined)}\r\x1b[2K${Progress.line({ stage: "m", done: 10, total: 100, unit: "bytes" }, undefined)}\n${Progress.line({ stage: "out", done: 20, total: 100, unit: "bytes" }, undefined)}`)
    out = ""
    emit({ type: "stage-finished", time: 1200, stage: "m", kind: "merge/ties", status: "succeeded", durationMs: 200 })
    // Both bars cleared (the last line, then one up), the finished line, then the bar left.
    expect(out).toBe(`\r\x1b[2K\x1b[1A\x1b[2K\x1b[32m  ✓ m (merge/ties) succeeded in 200 ms\x1b[0m\n${Progress.line({ stage: "out", done: 20, total: 100, unit: "bytes" }, undefined)}`)
  })
})
