/**
 * The view model of a run: one value that the dashboard page, the JSON API and `report.html` are
 * all rendered from. It is built, by a pure function, from what a run directory holds — the
 * manifest (what ran, with which params, how each stage ended), the events (what is happening now)
 * and the spans (when things happened). The events are applied on top of the manifest: only they
 * say that a stage has started and how far it got.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import type { RunEvent } from "../Events.ts"
import type { SpanEvent, SpanView } from "./Spans.ts"

/** A stage's state on the page; `pending` has not started, `running` has. @category models */
export type StageState = "pending" | "running" | "succeeded" | "failed" | "skipped" | "interrupted" | "planned"

/**
 * The state of a whole run; `crashed` is never written by the runner: it is a `running` manifest
 * whose owner process is gone (Manifest.effectiveStatus). @category models
 */
export type RunStatus = "running" | "succeeded" | "failed" | "interrupted" | "crashed"

/** The last progress a stage reported. @category models */
export interface Progress {
  readonly done: number
  readonly total: number
  readonly unit: string
  readonly bytes?: number | undefined
  readonly totalBytes?: number | undefined
  readonly detail?: string | undefined
}

/** @category models */
export interface StageView {
  readonly id: string
  readonly kind: string
  readonly state: StageState
  /** The stages this one reads from (its edges in the DAG). */
  readonly dependsOn: ReadonlyArray<string>
  /** The `with:` values as written. */
  readonly params: unknown
  readonly startedAt?: number | undefined
  readonly durationMs?: number | undefined
  readonly error?: { readonly tag: string; readonly message: string } | undefined
  readonly blockedBy?: string | undefined
  /** The result came from the results store: an earlier run computed it. */
  readonly cached?: boolean | undefined
  /** The stage had the same key as this earlier stage of the run, and took its value. */
  readonly sameAs?: string | undefined
  /** On a cluster: the worker that ran it. */
  readonly worker?: string | undefined
  /** The manifest's output summary: a model, files, or metrics `{ type, values, artifacts }`. */
  readonly output?: unknown
  readonly summary?: string | undefined
  readonly progress?: Progress | undefined
  /** The stage's events but progress (of which only the last is kept, in `progress`). */
  readonly events: ReadonlyArray<RunEvent>
  readonly progressEvents: number
  /** Events recorded on the stage's spans (its own and its children's), in time order. */
  readonly spanEvents: ReadonlyArray<StageSpanEvent>
}

/** A span event of a stage, with the name of the span it was recorded on. @category models */
export interface StageSpanEvent extends SpanEvent {
  readonly span: string
}

/** @category models */
export interface FileView {
  readonly path: string
  readonly bytes: number
  readonly sha256: string
}

/** @category models */
export interface RunView {
  readonly runId: string
  readonly status: RunStatus
  readonly pipeline: { readonly name: string; readonly file?: string | undefined; readonly description?: string | undefined }
  readonly startedAt: number
  readonly endedAt?: number | undefined
  readonly durationMs?: number | undefined
  readonly stages: ReadonlyArray<StageView>
  readonly edges: ReadonlyArray<{ readonly from: string; readonly to: string }>
  readonly spans: ReadonlyArray<SpanView>
  /** Where the spans came from: the finished run's trace, or the live events. */
  readonly spansFrom: "trace" | "events"
  /** Complete lines of `events.jsonl` reflected here: where a live page's event stream resumes. */
  readonly eventCount: number
  readonly inputs: ReadonlyArray<FileView>
  readonly outputs: ReadonlyArray<FileView>
  readonly tools: Readonly<Record<string, string>>
}

/** One row of the run list. @category models */
export interface RunSummary {
  readonly runId: string
  readonly status: RunStatus
  readonly pipeline: string
  readonly startedAt: number
  readonly durationMs?: number | undefined
  readonly stages: number
  readonly failed: number
}

const FileRecord = Schema.Struct({ path: Schema.String, bytes: Schema.Number, sha256: Schema.String })

const IrStage = Schema.Struct({
  id: Schema.String,
  uses: Schema.String,
  with: Schema.optional(Schema.Record(Schema.String, Schema.Unknown)),
  needs: Schema.optional(Schema.Array(Schema.String))
})

/** The parts of `manifest.json` the dashboard reads; other fields are ignored. @category schemas */
export const ManifestView = Schema.Struct({
  runId: Schema.String,
  status: Schema.Literals(["running", "succeeded", "failed", "interrupted"]),
  /** The process running it (older runs have none). */
  owner: Schema.optional(Schema.Struct({ pid: Schema.Number, start: Schema.String, host: Schema.String })),
  startedAt: Schema.String,
  endedAt: Schema.optional(Schema.String),
  pipeline: Schema.Struct({
    name: Schema.String,
    file: Schema.optional(Schema.String),
    ir: Schema.optional(Schema.Struct({ description: Schema.optional(Schema.String), stages: Schema.Array(IrStage) })),
    /** The input port names of each kind the pipeline uses, as the run knew them (a user's kinds too). */
    inputPorts: Schema.optional(Schema.Record(Schema.String, Schema.Array(Schema.String)))
  }),
  tools: Schema.optional(Schema.Record(Schema.String, Schema.String)),
  stages: Schema.Array(
    Schema.Struct({
      id: Schema.String,
      kind: Schema.String,
      status: Schema.String,
      params: Schema.optional(Schema.Unknown),
      startedAt: Schema.optional(Schema.String),
      durationMs: Schema.optional(Schema.Number),
      error: Schema.optional(Schema.Struct({ tag: Schema.String, message: Schema.String })),
      blockedBy: Schema.optional(Schema.String),
      output: Schema.optional(Schema.Unknown),
      cached: Schema.optional(Schema.Boolean),
      sameAs: Schema.optional(Schema.String),
      worker: Schema.optional(Schema.String)
    })
  ),
  inputs: Schema.optional(Schema.Array(FileRecord)),
  outputs: Schema.optional(Schema.Array(FileRecord))
})
export type ManifestView = typeof ManifestView.Type

/** A manifest as views show it: its status is the effective one (`crashed` for a dead owner). @category models */
export type ShownManifest = Omit<ManifestView, "status"> & { readonly status: RunStatus }

/** The names of a kind's input ports, when the kind is known; `undefined` for an unknown kind. */
export type InputPorts = (uses: string) => ReadonlyArray<string> | undefined

/**
 * The DAG's edges from the IR: each stage's `needs`, and the `with:` values that reference other
 * stages — exactly the kind's input ports when the kind is known, otherwise any string naming
 * another stage, or list of strings that all do.
 */
export const edgesOf = (stages: ReadonlyArray<typeof IrStage.Type>, inputPorts: InputPorts = () => undefined): ReadonlyArray<{ readonly from: string; readonly to: string }> => {
  const ids = new Set(stages.map((s) => s.id))
  const edges: Array<{ from: string; to: string }> = []
  for (const s of stages) {
    const ports = inputPorts(s.uses)
    const refs = new Set<string>()
    for (const [key, value] of Object.entries(s.with ?? {})) {
      if (ports !== undefined && !ports.includes(key)) continue
      // Without the kind, only a list made wholly of stage ids reads as references.
      const list = Array.isArray(value) && value.every((v) => typeof v === "string" && (ports !== undefined || ids.has(v)))
      const candidates = typeof value === "string" ? [value] : list ? (value as ReadonlyArray<string>) : []
      for (const c of candidates) if (ids.has(c) && c !== s.id) refs.add(c)
    }
    for (const n of s.needs ?? []) if (ids.has(n) && n !== s.id) refs.add(n)
    for (const from of refs) edges.push({ from, to: s.id })
  }
  return edges
}

/** Parses `events.jsonl`: complete lines only (a line being written is left for later); bad lines are skipped. */
export const parseEvents = (text: string): { readonly events: ReadonlyArray<RunEvent>; readonly lines: number } => {
  const end = text.lastIndexOf("\n")
  if (end < 0) return { events: [], lines: 0 }
  const lines = text.slice(0, end).split("\n")
  const events: Array<RunEvent> = []
  for (const line of lines) {
    try {
      const event = JSON.parse(line) as RunEvent
      if (typeof event === "object" && event !== null && typeof event.type === "string") events.push(event)
    } catch {
      // A torn or foreign line: the rest of the log is still worth showing.
    }
  }
  return { events, lines: lines.length }
}

const finalStates: ReadonlySet<string> = new Set(["succeeded", "failed", "skipped", "interrupted", "planned"])

const toState = (status: string): StageState => (finalStates.has(status) ? (status as StageState) : status === "running" ? "running" : "pending")

const time = (iso: string | undefined): number | undefined => {
  if (iso === undefined) return undefined
  const t = Date.parse(iso)
  return Number.isNaN(t) ? undefined : t
}

interface Mutable {
  id: string
  kind: string
  state: StageState
  dependsOn: Array<string>
  params: unknown
  startedAt?: number | undefined
  durationMs?: number | undefined
  error?: { readonly tag: string; readonly message: string } | undefined
  blockedBy?: string | undefined
  cached?: boolean | undefined
  sameAs?: string | undefined
  worker?: string | undefined
  output?: unknown
  summary?: string | undefined
  progress?: Progress | undefined
  events: Array<RunEvent>
  progressEvents: number
  spanEvents: Array<StageSpanEvent>
}

/** Builds the view of a run from its manifest, events and spans. */
export const make = (input: {
  readonly manifest: ShownManifest
  readonly events: ReadonlyArray<RunEvent>
  readonly eventCount: number
  readonly spans: ReadonlyArray<SpanView>
  readonly spansFrom: "trace" | "events"
  readonly inputPorts?: InputPorts
}): RunView => {
  const { manifest, events } = input
  const ir = manifest.pipeline.ir?.stages ?? []
  // The run's own record first: a dashboard started without the user's kinds still draws their edges.
  const recorded = manifest.pipeline.inputPorts
  const edges = edgesOf(ir, (uses) => recorded?.[uses] ?? input.inputPorts?.(uses))
  const stages = new Map<string, Mutable>()
  const blank = (id: string, kind: string, params: unknown): Mutable => ({ id, kind, state: "pending", dependsOn: [], params, events: [], progressEvents: 0, spanEvents: [] })
  for (const s of ir) stages.set(s.id, blank(s.id, s.uses, s.with ?? {}))
  for (const r of manifest.stages) {
    const s = stages.get(r.id) ?? blank(r.id, r.kind, r.params)
    stages.set(r.id, s)
    Object.assign(s, { kind: r.kind, state: toState(r.status), startedAt: time(r.startedAt), durationMs: r.durationMs, error: r.error, blockedBy: r.blockedBy, output: r.output, cached: r.cached, sameAs: r.sameAs, worker: r.worker })
  }
  for (const e of events) {
    if (e.type !== "stage-started" && e.type !== "stage-progress" && e.type !== "stage-finished") continue
    const s = stages.get(e.stage) ?? blank(e.stage, e.type === "stage-progress" ? "" : e.kind, undefined)
    stages.set(e.stage, s)
    if (e.type === "stage-progress") {
      s.progressEvents++
      s.progress = { done: e.done, total: e.total, unit: e.unit, bytes: e.bytes, totalBytes: e.totalBytes, detail: e.detail }
      continue
    }
    s.events.push(e)
    if (e.type === "stage-started") {
      if (!finalStates.has(s.state)) s.state = "running"
      s.startedAt ??= e.time
    } else {
      s.state = e.status
      s.durationMs ??= e.durationMs
      s.error ??= e.error
      s.summary = e.summary
      if (e.cached === true) s.cached = true
      s.sameAs ??= e.sameAs
    }
  }
  for (const { from, to } of edges) stages.get(to)?.dependsOn.push(from)
  for (const [stageId, list] of spanEventsByStage(input.spans)) stages.get(stageId)?.spanEvents.push(...list)
  const ended = manifest.status !== "running"
  // A run that ended (or crashed) with a stage still "running" was stopped under it.
  if (ended) for (const s of stages.values()) if (s.state === "running") s.state = "interrupted"
  const finished = events.find((e) => e.type === "run-finished")
  const startedAt = time(manifest.startedAt) ?? events[0]?.time ?? 0
  const endedAt = time(manifest.endedAt) ?? finished?.time
  return {
    runId: manifest.runId,
    status: manifest.status,
    pipeline: { name: manifest.pipeline.name, file: manifest.pipeline.file, description: manifest.pipeline.ir?.description },
    startedAt,
    endedAt,
    durationMs: finished?.type === "run-finished" ? finished.durationMs : endedAt === undefined ? undefined : endedAt - startedAt,
    stages: [...stages.values()],
    edges,
    spans: input.spans,
    spansFrom: input.spansFrom,
    eventCount: input.eventCount,
    inputs: manifest.inputs ?? [],
    outputs: manifest.outputs ?? [],
    tools: manifest.tools ?? {}
  }
}

/** Span events grouped by the stage whose span (or descendant span) recorded them, in time order. */
export const spanEventsByStage = (spans: ReadonlyArray<SpanView>): ReadonlyMap<string, ReadonlyArray<StageSpanEvent>> => {
  const byId = new Map(spans.map((s) => [s.id, s] as const))
  const stageOf = (span: SpanView): string | undefined => {
    const seen = new Set<string>()
    for (let s: SpanView | undefined = span; s !== undefined && !seen.has(s.id); s = s.parentId === undefined ? undefined : byId.get(s.parentId)) {
      seen.add(s.id)
      if (s.stageId !== undefined) return s.stageId
    }
    return undefined
  }
  const out = new Map<string, Array<StageSpanEvent>>()
  for (const span of spans) {
    if (span.events.length === 0) continue
    const stage = stageOf(span)
    if (stage === undefined) continue
    const list = out.get(stage) ?? []
    for (const e of span.events) list.push({ ...e, span: span.name })
    out.set(stage, list)
  }
  for (const list of out.values()) list.sort((a, b) => a.time - b.time)
  return out
}

/** The run-list row of a manifest. */
export const summaryOf = (manifest: ShownManifest): RunSummary => {
  const startedAt = time(manifest.startedAt) ?? 0
  const endedAt = time(manifest.endedAt)
  return {
    runId: manifest.runId,
    status: manifest.status,
    pipeline: manifest.pipeline.name,
    startedAt,
    durationMs: endedAt === undefined ? undefined : endedAt - startedAt,
    stages: manifest.pipeline.ir?.stages.length ?? manifest.stages.length,
    failed: manifest.stages.filter((s) => s.status === "failed").length
  }
}
