import { describe, expect, it } from "vitest"
import type { RunEvent } from "../../src/Events.ts"
import * as RunData from "../../src/ui/RunData.ts"
import * as RunView from "../../src/ui/RunView.ts"
import * as Spans from "../../src/ui/Spans.ts"
import * as StageCard from "../../src/ui/StageCard.ts"

const T = Date.parse("2026-12-01T08:00:00.000Z")

const manifest = (status: RunView.ManifestView["status"], stages: RunView.ManifestView["stages"]): RunView.ManifestView => ({
  runId: "r",
  status,
  startedAt: new Date(T).toISOString(),
  pipeline: {
    name: "p",
    ir: {
      stages: [
        { id: "a", uses: "load", with: { path: "b" }, needs: [] },
        { id: "b", uses: "load", with: { path: "b.safetensors" } },
        { id: "avg", uses: "merge/linear", with: { models: ["a", "b"], weights: [1, 2] } },
        { id: "out", uses: "save", with: { model: "avg", path: "a" }, needs: ["b"] },
        { id: "mine", uses: "user/thing", with: { source: "avg", label: "out", list: ["a", "zzz"] } }
      ]
    }
  },
  stages
})

describe("the DAG's edges from the IR", () => {
  it("follows the kind's input ports when the kind is known, and strings naming a stage when not; plus needs", () => {
    const ir = manifest("running", []).pipeline.ir!.stages
    const edges = RunView.edgesOf(ir, RunData.inputPortsOf()).map((e) => `${e.from}->${e.to}`)
    // "path: b" of load and "path: a" of save are not ports; "label: out" of an unknown kind reads as a reference.
    expect(edges).toEqual(["a->avg", "b->avg", "avg->out", "b->out", "avg->mine", "out->mine"])
    expect(RunView.edgesOf(ir).map((e) => `${e.from}->${e.to}`)).toContain("b->a")
  })
})

describe("events.jsonl", () => {
  it("takes complete lines only, and skips torn ones", () => {
    const text = `{"type":"run-started","time":1}\nnot json\n{"type":"stage-started","time":2,"stage":"a","kind":"load"}\n{"type":"stage-fin`
    const parsed = RunView.parseEvents(text)
    expect(parsed.lines).toBe(3)
    expect(parsed.events.map((e) => e.type)).toEqual(["run-started", "stage-started"])
    expect(RunView.parseEvents("")).toEqual({ events: [], lines: 0 })
  })
})

describe("the run view", () => {
  const events: ReadonlyArray<RunEvent> = [
    { type: "run-started", time: T, runId: "r", runDir: "/r", pipeline: "p", stages: ["a", "b", "avg", "out", "mine"] },
    { type: "stage-started", time: T + 1, stage: "a", kind: "load" },
    { type: "stage-finished", time: T + 5, stage: "a", kind: "load", status: "succeeded", durationMs: 4, summary: "2 tensors" },
    { type: "stage-started", time: T + 6, stage: "b", kind: "load" },
    { type: "stage-progress", time: T + 7, stage: "b", done: 1, total: 4, unit: "tensors", bytes: 10, totalBytes: 40 },
    { type: "stage-progress", time: T + 8, stage: "b", done: 2, total: 4, unit: "tensors", bytes: 20, totalBytes: 40, detail: "w2" }
  ]

  it("shows what the events say before the manifest catches up: running stages with their last progress", () => {
    const view = RunView.make({ manifest: manifest("running", []), events, eventCount: 6, spans: Spans.fromEvents(events, T + 9), spansFrom: "events", inputPorts: RunData.inputPortsOf() })
    const state = Object.fromEntries(view.stages.map((s) => [s.id, s.state]))
    expect(state).toEqual({ a: "succeeded", b: "running", avg: "pending", out: "pending", mine: "pending" })
    const b = view.stages.find((s) => s.id === "b")!
    expect(b.progress).toEqual({ done: 2, total: 4, unit: "tensors", bytes: 20, totalBytes: 40, detail: "w2" })
    expect(b.progressEvents).toBe(2)
    expect(b.events.map((e) => e.type)).toEqual(["stage-started"])
    expect(view.stages.find((s) => s.id === "avg")!.dependsOn).toEqual(["a", "b"])
    expect(view.spans.map((s) => [s.name, s.open])).toEqual([["run p", true], ["stage a", false], ["stage b", true]])
    expect(view.durationMs).toBeUndefined()
  })

  it("marks a stage still running when the run has ended as interrupted, and keeps the manifest's errors and outputs", () => {
    const view = RunView.make({
      manifest: { ...manifest("interrupted", [
        { id: "a", kind: "load", status: "succeeded", durationMs: 4, output: { type: "model", tensors: 2, bytes: 8 } },
        { id: "avg", kind: "merge/linear", status: "failed", error: { tag: "MergeInputsMismatch", message: "w differs" } },
        { id: "out", kind: "save", status: "skipped", blockedBy: "avg" }
      ]), endedAt: new Date(T + 50).toISOString() },
      events,
      eventCount: 6,
      spans: [],
      spansFrom: "events"
    })
    const byId = new Map(view.stages.map((s) => [s.id, s] as const))
    expect(byId.get("b")!.state).toBe("interrupted")
    expect(byId.get("a")!.output).toEqual({ type: "model", tensors: 2, bytes: 8 })
    expect(byId.get("avg")!.error).toEqual({ tag: "MergeInputsMismatch", message: "w differs" })
    expect(byId.get("out")).toMatchObject({ state: "skipped", blockedBy: "avg" })
    expect(view.durationMs).toBe(50)
  })

  it("gives each stage the events recorded on its spans and their descendants", () => {
    const span = (id: string, name: string, parentId: string | undefined, events: Spans.SpanView["events"], stageId?: string): Spans.SpanView =>
      ({ id, name, parentId, start: T, end: T + 1, open: false, error: false, attributes: {}, events, stageId })
    const grouped = RunView.spanEventsByStage([
      span("run", "run p", undefined, [{ name: "run.note", time: T, attributes: {} }]),
      span("s", "stage fit", "run", [], "fit"),
      span("t", "Train.train", "s", [{ name: "train.epoch", time: T + 2, attributes: { epoch: 2 } }, { name: "train.epoch", time: T + 1, attributes: { epoch: 1 } }])
    ])
    expect([...grouped.keys()]).toEqual(["fit"])
    expect(grouped.get("fit")!.map((e) => [e.span, e.attributes.epoch])).toEqual([["Train.train", 1], ["Train.train", 2]])
  })

  it("shows a lazy merge's diagnostics on its card, its progress in one unit, and why its reader failed", () => {
    const span = (id: string, name: string, parentId: string | undefined, events: Spans.SpanView["events"], stageId?: string): Spans.SpanView =>
      ({ id, name, parentId, start: T, end: T + 1, open: false, error: false, attributes: {}, events, stageId })
    const diagnostics = (tensor: string, kept: number, agreement: number) => ({ name: "merge.diagnostics", time: T + 1, attributes: { tensor, "kept.0": kept, "kept.1": kept, agreement, "tau_norm.0": 2.5 } })
    const spans = [
      span("run", "run p", undefined, []),
      span("m", "stage avg", "run", [], "avg"),
      span("t0", "tensor layers.0.w", "m", [diagnostics("layers.0.w", 0.3, 0.75)]),
      span("t1", "tensor layers.1.w", "m", [diagnostics("layers.1.w", 0.3, 0.5)])
    ]
    const view = RunView.make({
      manifest: manifest("failed", [
        { id: "avg", kind: "merge/ties", status: "succeeded", durationMs: 40 },
        { id: "out", kind: "save", status: "failed", blockedBy: "avg", error: { tag: "UpstreamFailed", message: "stage \"avg\" failed" } }
      ]),
      events: [{ type: "stage-progress", time: T + 2, stage: "avg", done: 2_000_000, total: 8_000_000, unit: "bytes", detail: "layers.1.w" }],
      eventCount: 1,
      spans,
      spansFrom: "trace"
    })
    const card = (id: string) => StageCard.stageCard(view.stages.find((s) => s.id === id)!, T, { artifact: () => "" })
    const avg = card("avg")
    expect(avg).toContain('<section class="diagnostics">')
    expect(avg).toContain("kept.0 0.3 · kept.1 0.3 · agreement 0.5–0.75 · tau_norm.0 2.5")
    expect(avg).toContain("<th>tensor</th><th>kept.0</th><th>kept.1</th><th>agreement</th><th>tau_norm.0</th>")
    expect(avg).toContain("<td>layers.0.w</td><td>0.3</td><td>0.3</td><td>0.75</td><td>2.5</td>")
    expect(avg).toContain('<span class="progress-text">2.00 MB/8.00 MB — layers.1.w</span>')
    // Listed once, in their own section, not again among the span events.
    expect(avg).not.toContain("span events (")
    expect(card("out")).toContain('failed because <a href="#stage-avg">avg</a> failed')
  })
})

