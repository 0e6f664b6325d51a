import { describe, expect, it } from "vitest"
import * as Spans from "../../src/ui/Spans.ts"
import * as Timeline from "../../src/ui/Timeline.ts"

const span = (id: string, name: string, start: number, end: number, extra: Partial<Spans.SpanView> = {}): Spans.SpanView => ({
  id, name, start, end, open: false, error: false, attributes: {}, events: [],
  ...(name.startsWith("stage ") ? { stageId: name.slice(6) } : {}),
  ...extra
})

const T = 1_796_115_980_000
const spans = [
  span("s-b", "stage b", T + 45, T + 90, { parentId: "run" }),
  span("w", "Save.write", T + 13, T + 20, { parentId: "r" }),
  span("run", "run demo", T, T + 100),
  span("r", "Save.run", T + 12, T + 38, { parentId: "s-a" }),
  span("s-a", "stage a", T + 10, T + 40, { parentId: "run" })
]

describe("timeline layout", () => {
  it("lists spans in tree order (children by start time) with bars on one time axis", () => {
    const t = Timeline.layout(spans)
    expect(t.rows.map((r) => [r.name, r.depth, r.kind, r.stageId])).toEqual([
      ["run demo", 0, "run", undefined],
      ["stage a", 1, "stage", "a"],
      ["Save.run", 2, "span", "a"],
      ["Save.write", 3, "span", "a"],
      ["stage b", 1, "stage", "b"]
    ])
    // x(t) = label + (t − t0)/(t1 − t0) · (width − label − right margin), computed here independently.
    const x = (ms: number) => 220 + (ms / 100) * (960 - 220 - 64)
    for (const r of t.rows) {
      expect(r.x).toBeCloseTo(x(r.start - T), 9)
      expect(r.width).toBeCloseTo(x(r.end - T) - x(r.start - T), 9)
    }
    expect(t.rows.map((r) => r.y)).toEqual([26, 46, 66, 86, 106])
    expect(t.ticks.map((k) => k.label)).toEqual(["0", "20 ms", "40 ms", "60 ms", "80 ms", "100 ms"])
    expect(t.ticks[5]!.x).toBeCloseTo(x(100), 9)
  })

  it("caps depth and rows, counting what it leaves out", () => {
    expect(Timeline.layout(spans, { maxDepth: 1 })).toMatchObject({ hidden: 2 })
    expect(Timeline.layout(spans, { maxDepth: 1 }).rows.map((r) => r.name)).toEqual(["run demo", "stage a", "stage b"])
    const capped = Timeline.layout(spans, { maxRows: 2 })
    expect(capped.rows).toHaveLength(2)
    expect(capped.hidden).toBe(3)
  })

  it("colours stage bars by stage state, other bars by their span: open is running, status ERROR is failed", () => {
    const t = Timeline.layout([span("run", "run x", T, T + 10, { open: true }), span("s", "stage s", T, T + 5, { parentId: "run", error: true }), span("c", "Load.run", T, T + 4, { parentId: "s", error: true })])
    expect(t.rows.map((r) => r.state)).toEqual(["running", "failed", "failed"])
    const states = new Map([["s", "skipped" as const]])
    expect(Timeline.layout([span("s", "stage s", T, T + 5)], { states }).rows[0]!.state).toBe("skipped")
  })

  it("chooses round tick steps: 1, 2 or 5 × 10^k ms", () => {
    expect([100, 1234, 60_000, 7, 0.9].map((ms) => Timeline.tickStep(ms))).toEqual([20, 500, 10_000, 2, 0.2])
    const long = Timeline.layout([span("run", "run x", T, T + 2500)])
    expect(long.ticks.map((k) => k.label)).toEqual(["0", "0.5 s", "1 s", "1.5 s", "2 s", "2.5 s"])
  })

  it("draws a bar per row, stage rows tagged with their stage id", () => {
    const svg = Timeline.svg(Timeline.layout(spans))
    expect(svg.match(/<rect class="bar /g)).toHaveLength(5)
    expect(svg).toContain(`<g class="row row-stage" data-stage="a" data-span="stage a" data-state="succeeded">`)
    expect(svg).toContain(`<g class="row row-span" data-stage="a" data-span="Save.write" data-state="succeeded">`)
  })
})

describe("spans", () => {
  it("reads OTLP JSON: nanosecond strings to milliseconds keeping microseconds, attributes of every type, events, status", () => {
    const trace = {
      resourceSpans: [{ scopeSpans: [{ spans: [
        { spanId: "aa", name: "stage fit", startTimeUnixNano: "1796115980031803434", endTimeUnixNano: "1796115980046619428", status: { code: 2 },
          attributes: [{ key: "crucible.stage.id", value: { stringValue: "fit" } }, { key: "n", value: { intValue: "7" } }, { key: "m", value: { intValue: 8 } }, { key: "x", value: { doubleValue: 0.5 } }, { key: "ok", value: { boolValue: true } }, { key: "bad", value: null }],
          events: [{ name: "train.epoch", timeUnixNano: "1796115980040000000", attributes: [{ key: "epoch", value: { intValue: 1 } }, { key: "loss", value: { doubleValue: 1.25 } }] }] },
        { spanId: "bb", parentSpanId: "", name: "run p", startTimeUnixNano: 1_796_115_980_000_000_000, endTimeUnixNano: 1_796_115_980_050_000_000 },
        { name: "no id", startTimeUnixNano: "1", endTimeUnixNano: "2" },
        { spanId: "cc", name: "bad times", startTimeUnixNano: "-5", endTimeUnixNano: "x" }
      ] }] }]
    }
    const [fit, run, ...rest] = Spans.fromOtlp(trace)
    expect(rest).toEqual([])
    expect(fit!.start).toBe(Number(1796115980031803434n / 1000n) / 1000)
    expect(fit!.start).toBeCloseTo(1796115980031.803, 3)
    expect(fit).toMatchObject({ id: "aa", stageId: "fit", error: true, open: false, attributes: { "crucible.stage.id": "fit", n: 7, m: 8, x: 0.5, ok: true } })
    expect(fit!.events).toEqual([{ name: "train.epoch", time: 1796115980040, attributes: { epoch: 1, loss: 1.25 } }])
    expect(run).toMatchObject({ id: "bb", parentId: undefined, stageId: undefined, error: false })
    expect(Spans.fromOtlp(null)).toEqual([])
    expect(Spans.fromOtlp({ resourceSpans: [{ scopeSpans: "no" }] })).toEqual([])
  })

  it("rebuilds a run's spans from its events, open ones ending now", () => {
    const spans = Spans.fromEvents([
      { type: "run-started", time: T, runId: "r", runDir: "/r", pipeline: "p", stages: ["a", "b", "c"] },
      { type: "stage-started", time: T + 5, stage: "a", kind: "load" },
      { type: "stage-finished", time: T + 20, stage: "a", kind: "load", status: "failed", durationMs: 15 },
      { type: "stage-finished", time: T + 21, stage: "c", kind: "save", status: "skipped", durationMs: 0 },
      { type: "stage-started", time: T + 22, stage: "b", kind: "save" }
    ], T + 30)
    expect(spans.map((s) => [s.name, s.start - T, s.end - T, s.open, s.error, s.stageId ?? null])).toEqual([
      ["run p", 0, 30, true, false, null],
      ["stage a", 5, 20, false, true, "a"],
      ["stage b", 22, 30, true, false, "b"]
    ])
  })
})
