/**
 * The run's timeline (a Gantt chart) from its spans: one row per span, in tree order (the run,
 * each stage by start time, each stage's own spans beneath it), each bar from the span's start to
 * its end on a shared time axis. A pure layout, then its SVG.
 *
 * Rows are capped (`maxDepth`, `maxRows`) because a stage may open a span per tensor; what is left
 * out is counted in `hidden`, never silently lost.
 *
 * @since 0.1.0
 */
import { clip, duration, escape, num } from "./Html.ts"
import type { StageState } from "./RunView.ts"
import type { SpanView } from "./Spans.ts"

/** How a bar is drawn. @category models */
export type BarKind = "run" | "stage" | "span"

/** @category models */
export interface TimelineRow {
  readonly spanId: string
  readonly name: string
  readonly depth: number
  readonly kind: BarKind
  /** The stage this row belongs to (itself or its nearest stage ancestor). */
  readonly stageId?: string | undefined
  /** Stage rows: the stage's state; other rows: `running`, `failed` or `succeeded` from the span. */
  readonly state: StageState
  readonly start: number
  readonly end: number
  readonly x: number
  readonly width: number
  readonly y: number
}

/** @category models */
export interface TimelineLayout {
  readonly width: number
  readonly height: number
  readonly labelWidth: number
  readonly rowHeight: number
  /** Time at the left edge of the axis, ms since the epoch. */
  readonly t0: number
  readonly t1: number
  readonly rows: ReadonlyArray<TimelineRow>
  readonly ticks: ReadonlyArray<{ readonly x: number; readonly label: string }>
  /** Spans not drawn (too deep or too many). */
  readonly hidden: number
}

/** Options of {@link layout}. */
export interface TimelineOptions {
  /** Total width in pixels (default 960). */
  readonly width?: number
  /** Deepest level drawn, the run being 0 and its stages 1 (default 3). */
  readonly maxDepth?: number
  /** Most rows drawn (default 150). */
  readonly maxRows?: number
  /** Stage states to colour stage bars (default: from the spans' status). */
  readonly states?: ReadonlyMap<string, StageState>
}

const ROW = 20
const TOP = 26
const LABEL = 220
const RIGHT = 64

/** Round tick steps covering `span` milliseconds with about `target` ticks: 1, 2 or 5 × 10^k ms. */
export const tickStep = (span: number, target = 6): number => {
  if (!(span > 0)) return 1
  const raw = span / target
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  return [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? 10 * magnitude
}

// Seconds once the axis spans a second or more; as many decimals as the step needs.
const tickLabel = (ms: number, step: number, total: number): string => {
  if (ms === 0) return "0"
  if (total >= 1000) return `${Number((ms / 1000).toFixed(Math.max(0, -Math.floor(Math.log10(step / 1000)))))} s`
  return `${Number(ms.toFixed(Math.max(0, -Math.floor(Math.log10(step)))))} ms`
}

/** Lays out `spans` on one time axis. */
export const layout = (spans: ReadonlyArray<SpanView>, options: TimelineOptions = {}): TimelineLayout => {
  const width = options.width ?? 960
  const maxDepth = options.maxDepth ?? 3
  const maxRows = options.maxRows ?? 150
  const ids = new Set(spans.map((s) => s.id))
  const children = new Map<string | undefined, Array<SpanView>>()
  for (const s of spans) {
    const parent = s.parentId !== undefined && ids.has(s.parentId) ? s.parentId : undefined
    const list = children.get(parent) ?? []
    list.push(s)
    children.set(parent, list)
  }
  for (const list of children.values()) list.sort((a, b) => a.start - b.start || a.end - b.end || (a.name < b.name ? -1 : 1))
  const ordered: Array<{ span: SpanView; depth: number; stageId: string | undefined }> = []
  let hidden = 0
  const walk = (parent: string | undefined, depth: number, stageId: string | undefined, seen: Set<string>) => {
    for (const s of children.get(parent) ?? []) {
      if (seen.has(s.id)) continue
      seen.add(s.id)
      const stage = s.stageId ?? stageId
      if (depth > maxDepth || ordered.length >= maxRows) hidden++
      else ordered.push({ span: s, depth, stageId: stage })
      walk(s.id, depth + 1, stage, seen)
    }
  }
  walk(undefined, 0, undefined, new Set())
  const t0 = Math.min(...ordered.map((o) => o.span.start))
  const t1 = Math.max(...ordered.map((o) => o.span.end))
  const start = Number.isFinite(t0) ? t0 : 0
  const total = Number.isFinite(t1) && t1 > start ? t1 - start : 1
  const area = width - LABEL - RIGHT
  const x = (t: number) => LABEL + ((t - start) / total) * area
  const rows = ordered.map(({ span, depth, stageId }, i): TimelineRow => {
    const kind: BarKind = span.stageId !== undefined ? "stage" : depth === 0 && span.name.startsWith("run ") ? "run" : "span"
    const own: StageState = span.open ? "running" : span.error ? "failed" : "succeeded"
    const state = kind === "stage" && span.stageId !== undefined ? (options.states?.get(span.stageId) ?? own) : own
    return { spanId: span.id, name: span.name, depth, kind, stageId, state, start: span.start, end: span.end, x: x(span.start), width: Math.max(1, x(span.end) - x(span.start)), y: TOP + i * ROW }
  })
  const step = tickStep(total)
  const ticks: Array<{ x: number; label: string }> = []
  for (let t = 0; t <= total + 1e-9; t += step) ticks.push({ x: x(start + t), label: tickLabel(t, step, total) })
  return { width, height: TOP + rows.length * ROW + 8, labelWidth: LABEL, rowHeight: ROW, t0: start, t1: start + total, rows, ticks, hidden }
}

/** The timeline as an SVG element. */
export const svg = (timeline: TimelineLayout): string => {
  const { width, height, rowHeight } = timeline
  const grid = timeline.ticks.map((t) => `<line class="tick" x1="${num(t.x)}" x2="${num(t.x)}" y1="18" y2="${height - 4}"/><text class="tick-label" x="${num(t.x)}" y="12">${escape(t.label)}</text>`)
  const rows = timeline.rows.map((r) => {
    const label = escape(clip(r.kind === "stage" && r.stageId !== undefined ? r.stageId : r.name, 30 - r.depth * 2))
    const title = escape(`${r.name}: ${duration(r.end - r.start)}${r.state === "running" ? " (running)" : ""}`)
    const stage = r.stageId === undefined ? "" : ` data-stage="${escape(r.stageId)}"`
    return [
      `<g class="row row-${r.kind}"${stage} data-span="${escape(r.name)}" data-state="${r.state}">`,
      `<title>${title}</title>`,
      `<text class="label" x="${4 + r.depth * 12}" y="${num(r.y + 14)}">${label}</text>`,
      `<rect class="bar bar-${r.kind}" data-kind="${r.kind}" x="${num(r.x)}" y="${num(r.y + 3)}" width="${num(r.width)}" height="${rowHeight - 6}" rx="2"/>`,
      r.kind === "span" ? "" : `<text class="dur" x="${num(r.x + r.width + 4)}" y="${num(r.y + 14)}">${escape(duration(r.end - r.start))}</text>`,
      `</g>`
    ].join("")
  })
  const more = timeline.hidden > 0 ? `<text class="hidden-note" x="4" y="${height + 8}">${timeline.hidden} more spans not shown</text>` : ""
  return [
    `<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height + (timeline.hidden > 0 ? 14 : 0)}" viewBox="0 0 ${width} ${height + (timeline.hidden > 0 ? 14 : 0)}" role="img" aria-label="timeline of the run's spans">`,
    ...grid,
    ...rows,
    more,
    `</svg>`
  ].join("")
}
