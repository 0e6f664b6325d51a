// A stage that computed nothing says so in every reporter: `cached` (from the results store) and
// `same as X` (the key of an earlier stage of the run) on plain and TTY lines; as fields in JSON.
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import type { RunEvent } from "../../src/Events.ts"
import * as Reporters from "../../src/cli/Reporters.ts"

const finished = (stage: string, extra: Partial<Extract<RunEvent, { type: "stage-finished" }>> = {}): RunEvent =>
  ({ type: "stage-finished", time: 0, stage, kind: "train", status: "succeeded", durationMs: 3, ...extra })

const written = (name: Reporters.ReporterName, events: ReadonlyArray<RunEvent>): string => {
  let text = ""
  const reporter = Reporters.make(name, (t) => (text += t), () => 100, (t) => (text += t))
  for (const e of events) Effect.runSync(reporter.emit(e))
  return text
}

describe("cached and same-as stages", () => {
  const events = [finished("train", { cached: true, summary: "4 epochs" }), finished("train2", { sameAs: "train", cached: true }), finished("fresh")]

  it("say so on plain lines; a stage that ran reads as before", () => {
    expect(written("plain", events).split("\n")).toEqual([
      "  ✓ train (train) cached (3 ms) — 4 epochs",
      "  = train2 (train) same as train",
      "  ✓ fresh (train) succeeded in 3 ms",
      ""
    ])
  })

  it("say so on the TTY, in the colour of success", () => {
    const text = written("tty", events)
    expect(text).toContain("\x1b[32m  ✓ train (train) cached (3 ms) — 4 epochs\x1b[0m\n")
    expect(text).toContain("\x1b[32m  = train2 (train) same as train\x1b[0m\n")
  })

  it("carry cached and sameAs in JSON lines", () => {
    const lines = written("json", events).trim().split("\n").map((l) => JSON.parse(l) as { cached?: boolean; sameAs?: string })
    expect(lines.map((l) => [l.cached, l.sameAs])).toEqual([[true, undefined], [true, "train"], [undefined, undefined]])
  })

  it("a failed stage is told as a failure even when marked", () => {
    expect(Reporters.line(finished("x", { status: "failed", cached: true, error: { tag: "E", message: "m" } }))).toMatch(/^ {2}✗ x \(train\) failed/)
  })
})
