/**
 * Spans for the timeline, from the two places a run records time: `trace.json` (OTLP JSON, written
 * at the end of a run) and `events.jsonl` (written live, so a run in progress has a timeline too).
 * Both become the same {@link SpanView}; times are milliseconds since the epoch, with the trace's
 * microseconds kept as a fraction.
 *
 * @since 0.1.0
 */
import type { RunEvent } from "../Events.ts"

/** An event recorded on a span (`Stage.event`: an epoch's loss, a point of a curve; or an exception). @category models */
export interface SpanEvent {
  readonly name: string
  /** Milliseconds since the epoch. */
  readonly time: number
  readonly attributes: Readonly<Record<string, string | number | boolean>>
}

/** One span, as the timeline draws it. @category models */
export interface SpanView {
  readonly id: string
  readonly parentId?: string | undefined
  readonly name: string
  /** Milliseconds since the epoch. */
  readonly start: number
  /** Milliseconds since the epoch; for an open span, the time the view was made. */
  readonly end: number
  /** Still running when the view was made. */
  readonly open: boolean
  /** The stage this span is (`crucible.stage.id`), for stage spans only. */
  readonly stageId?: string | undefined
  readonly error: boolean
  readonly attributes: Readonly<Record<string, string | number | boolean>>
  readonly events: ReadonlyArray<SpanEvent>
}

interface OtlpValue {
  readonly stringValue?: string
  readonly intValue?: string | number
  readonly doubleValue?: number
  readonly boolValue?: boolean
}

interface OtlpSpan {
  readonly spanId?: unknown
  readonly parentSpanId?: unknown
  readonly name?: unknown
  readonly startTimeUnixNano?: unknown
  readonly endTimeUnixNano?: unknown
  readonly attributes?: OtlpAttributes
  readonly events?: ReadonlyArray<{ readonly name?: unknown; readonly timeUnixNano?: unknown; readonly attributes?: OtlpAttributes }>
  readonly status?: { readonly code?: unknown }
}

type OtlpAttributes = ReadonlyArray<{ readonly key?: unknown; readonly value?: OtlpValue }>

const attributesOf = (list: OtlpAttributes | undefined): Record<string, string | number | boolean> => {
  const out: Record<string, string | number | boolean> = {}
  for (const a of Array.isArray(list) ? list : []) {
    const value = attributeValue(a?.value)
    if (typeof a?.key === "string" && value !== undefined) out[a.key] = value
  }
  return out
}

/** Nanoseconds (a decimal string or a number) to milliseconds, keeping microseconds. */
export const nanosToMillis = (nanos: unknown): number | undefined => {
  if (typeof nanos === "number") return Number.isFinite(nanos) ? nanos / 1e6 : undefined
  if (typeof nanos !== "string" || !/^\d+$/.test(nanos)) return undefined
  // BigInt first: a nanosecond timestamp has 19 digits, more than a double holds exactly.
  const micros = BigInt(nanos) / 1000n
  return Number(micros) / 1000
}

const attributeValue = (v: OtlpValue | undefined | null): string | number | boolean | undefined => {
  if (v === undefined || v === null || typeof v !== "object") return undefined
  if (typeof v.stringValue === "string") return v.stringValue
  if (v.intValue !== undefined) return Number(v.intValue)
  if (typeof v.doubleValue === "number") return v.doubleValue
  if (typeof v.boolValue === "boolean") return v.boolValue
  return undefined
}

/**
 * The spans of an OTLP JSON `ExportTraceServiceRequest` (`resourceSpans[].scopeSpans[].spans[]`).
 * Malformed spans (no id, no times) are dropped rather than failing the page.
 */
export const fromOtlp = (trace: unknown): ReadonlyArray<SpanView> => {
  const out: Array<SpanView> = []
  const resources = (trace as { resourceSpans?: unknown } | null)?.resourceSpans
  if (!Array.isArray(resources)) return out
  for (const r of resources) {
    const scopes = (r as { scopeSpans?: unknown } | null)?.scopeSpans
    if (!Array.isArray(scopes)) continue
    for (const s of scopes) {
      const spans = (s as { spans?: unknown } | null)?.spans
      if (!Array.isArray(spans)) continue
      for (const span of spans as ReadonlyArray<OtlpSpan>) {
        const start = nanosToMillis(span.startTimeUnixNano)
        const end = nanosToMillis(span.endTimeUnixNano)
        if (typeof span.spanId !== "string" || typeof span.name !== "string" || start === undefined || end === undefined) continue
        const attributes = attributesOf(span.attributes)
        const events = (Array.isArray(span.events) ? span.events : []).flatMap((e): Array<SpanEvent> => {
          const time = nanosToMillis(e?.timeUnixNano)
          return typeof e?.name === "string" && time !== undefined ? [{ name: e.name, time, attributes: attributesOf(e.attributes) }] : []
        })
        const stageId = attributes["crucible.stage.id"]
        out.push({
          id: span.spanId,
          parentId: typeof span.parentSpanId === "string" && span.parentSpanId !== "" ? span.parentSpanId : undefined,
          name: span.name,
          start,
          end: Math.max(start, end),
          open: false,
          stageId: span.name.startsWith("stage ") && typeof stageId === "string" ? stageId : undefined,
          error: span.status?.code === 2,
          attributes,
          events
        })
      }
    }
  }
  return out
}

/**
 * Spans rebuilt from run events: a run span from `run-started` to `run-finished`, and a stage span
 * from each `stage-started` to its `stage-finished`; spans not yet finished end at `now`. Named
 * like the trace's spans (`run <pipeline>`, `stage <id>`), so the timeline treats both alike.
 */
export const fromEvents = (events: ReadonlyArray<RunEvent>, now: number): ReadonlyArray<SpanView> => {
  const started = events.find((e) => e.type === "run-started")
  const finished = events.find((e) => e.type === "run-finished")
  const runId = "run"
  const out: Array<SpanView> = []
  const open = new Map<string, { start: number; kind: string }>()
  const stages: Array<SpanView> = []
  for (const e of events) {
    if (e.type === "stage-started") open.set(e.stage, { start: e.time, kind: e.kind })
    if (e.type === "stage-finished" && e.status !== "skipped") {
      const begun = open.get(e.stage)
      open.delete(e.stage)
      const start = begun?.start ?? e.time - e.durationMs
      stages.push(stageSpan(e.stage, e.kind, start, e.time, false, e.status === "failed", runId))
    }
  }
  const end = finished?.time ?? now
  for (const [stage, { start, kind }] of open) stages.push(stageSpan(stage, kind, start, Math.max(start, finished === undefined ? now : end), finished === undefined, false, runId))
  const first = Math.min(...stages.map((s) => s.start), started?.time ?? Infinity)
  if (Number.isFinite(first)) {
    out.push({ id: runId, name: `run ${started?.type === "run-started" ? started.pipeline : ""}`.trim(), start: first, end: Math.max(first, end), open: finished === undefined, error: finished?.type === "run-finished" && finished.status !== "succeeded", attributes: {}, events: [] })
  }
  return [...out, ...stages.sort((a, b) => a.start - b.start)]
}

const stageSpan = (stage: string, kind: string, start: number, end: number, open: boolean, error: boolean, parentId: string): SpanView => ({
  id: `stage:${stage}`,
  parentId,
  name: `stage ${stage}`,
  start,
  end,
  open,
  stageId: stage,
  error,
  attributes: { "crucible.stage.id": stage, "crucible.stage.kind": kind },
  events: []
})
