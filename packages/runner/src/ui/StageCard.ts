/**
 * One stage's card on the run page: its state, progress, error (with the stack trace its span
 * recorded), what it produced (a model, files, or metrics with their tables and charts), a merge's
 * diagnostics per tensor, the run events and span events it emitted (epochs charted), and its params.
 *
 * @since 0.1.0
 */
import * as ProgressBar from "../cli/Progress.ts"
import * as Dag from "./Dag.ts"
import * as Diagnostics from "./Diagnostics.ts"
import { bytes, clip, duration, escape, number } from "./Html.ts"
import * as MetricsView from "./MetricsView.ts"
import type { StageView } from "./RunView.ts"

/** What a card needs from its page. @category models */
export interface CardOptions {
  /** The HTML for an artifact of a stage (a path relative to the run directory). */
  readonly artifact: (relative: string) => string
}

const pretty = (value: unknown): string => escape(JSON.stringify(value, null, 2) ?? "")

// The bar and its text count one thing (bytes when the stage reports them; see cli/Progress.ts).
const progressBlock = (stage: StageView): string => {
  const fraction = stage.state === "succeeded" ? 1 : Dag.fractionDone(stage.progress) ?? 0
  const p = stage.progress
  const text = p === undefined ? "" : `${ProgressBar.text(ProgressBar.amount(p))}${p.detail === undefined ? "" : ` — ${p.detail}`}`
  return `<div class="progress"${p === undefined ? " hidden" : ""}><div class="track"><div class="fill" style="width:${(fraction * 100).toFixed(1)}%"></div></div><span class="progress-text">${escape(text)}</span></div>`
}

const outputBlock = (stage: StageView, options: CardOptions): string => {
  const output = stage.output as { type?: string; tensors?: number; bytes?: number; files?: ReadonlyArray<{ path: string; bytes: number; sha256: string }>; values?: Record<string, unknown>; artifacts?: ReadonlyArray<string> } | undefined
  if (output === undefined || output === null || typeof output !== "object") return stage.summary === undefined || stage.blockedBy !== undefined ? "" : `<p class="note">${escape(stage.summary)}</p>`
  if (output.type === "model") return `<p>output: model, ${output.tensors ?? "?"} tensors, ${bytes(output.bytes ?? 0)}</p>`
  if (output.type === "files" && Array.isArray(output.files)) {
    return `<table class="files"><thead><tr><th>wrote</th><th>bytes</th><th>sha256</th></tr></thead><tbody>${output.files.map((f) => `<tr><td><code>${escape(f.path)}</code></td><td>${escape(bytes(f.bytes))}</td><td><code>${escape(f.sha256.slice(0, 16))}…</code></td></tr>`).join("")}</tbody></table>`
  }
  if (output.type === "metrics" && typeof output.values === "object" && output.values !== null) {
    const rendered = MetricsView.render(output.values)
    const artifacts = (output.artifacts ?? []).filter((a): a is string => typeof a === "string")
    return [
      `<div class="metrics-block">`,
      rendered.table,
      rendered.blocks.length === 0 ? "" : `<div class="charts">${rendered.blocks.join("")}</div>`,
      artifacts.length === 0 ? "" : `<div class="artifacts">${artifacts.map((a) => options.artifact(a)).join("")}</div>`,
      `</div>`
    ].join("")
  }
  return `<pre>${pretty(output)}</pre>`
}

const eventsBlock = (stage: StageView, runStart: number): string => {
  if (stage.events.length === 0 && stage.progressEvents === 0) return ""
  const rows = stage.events.map((e) => {
    const at = `+${duration(Math.max(0, e.time - runStart))}`
    const what = e.type === "stage-finished" ? `${e.status}${e.summary === undefined ? "" : ` — ${e.summary}`}` : e.type === "stage-started" ? `started (${e.kind})` : e.type
    return `<tr><td>${escape(at)}</td><td>${escape(e.type)}</td><td>${escape(clip(what, 300))}</td></tr>`
  })
  return `<details class="events"><summary>events (${stage.events.length}${stage.progressEvents > 0 ? ` + ${stage.progressEvents} progress` : ""})</summary><table><tbody>${rows.join("")}</tbody></table></details>`
}

/**
 * Where a stage's value came from when it was not computed: `cached` (the results store: an
 * earlier run computed it) and `same as X` (an earlier stage of this run with the same key). An
 * empty element otherwise, which the live page fills when the stage finishes.
 */
export const reuseBadge = (stage: Pick<StageView, "cached" | "sameAs">): string => {
  const sameAs = stage.sameAs === undefined ? "" : `same as <a href="#stage-${escape(stage.sameAs)}">${escape(stage.sameAs)}</a>`
  const text = [stage.cached === true ? `<span class="badge" data-reuse="cached">cached</span>` : "", sameAs].filter((t) => t !== "").join(" ")
  return `<span class="reuse"${stage.cached === true ? ` data-cached="true"` : ""}${stage.sameAs === undefined ? "" : ` data-same-as="${escape(stage.sameAs)}"`}>${text}</span>`
}

/** The card of `stage`; times are shown from `runStart`. */
export const stageCard = (stage: StageView, runStart: number, options: CardOptions): string => {
  const error = stage.error === undefined ? "" : `<pre class="error">${escape(`${stage.error.tag}: ${stage.error.message}`)}</pre>`
  // A consumer of a lazy stage fails (not skips) when that stage fails while it reads the output.
  const blocked = stage.blockedBy === undefined ? "" : `<p class="note">${stage.state === "failed" ? "failed" : "skipped"} because <a href="#stage-${escape(stage.blockedBy)}">${escape(stage.blockedBy)}</a> failed</p>`
  const timing = stage.durationMs === undefined || stage.state === "skipped" ? "" : `<span class="meta">${escape(duration(stage.durationMs))}</span>`
  const worker = stage.worker === undefined ? "" : `<span class="meta" data-worker="${escape(stage.worker)}">on ${escape(stage.worker)}</span>`
  const deps = stage.dependsOn.length === 0 ? "" : `<span class="meta">reads ${stage.dependsOn.map((d) => `<a href="#stage-${escape(d)}">${escape(d)}</a>`).join(", ")}</span>`
  return [
    `<article class="stage" id="stage-${escape(stage.id)}" data-stage="${escape(stage.id)}" data-state="${stage.state}">`,
    `<h3>${escape(stage.id)} <span class="kind">${escape(stage.kind)}</span> <span class="badge" data-state="${stage.state}">${stage.state}</span>${reuseBadge(stage)}${timing}${worker}${deps}</h3>`,
    `<div class="dynamic">${progressBlock(stage)}${error}${blocked}${outputBlock(stage, options)}${Diagnostics.block(stage.spanEvents)}${eventsBlock(stage, runStart)}${spanEventsBlock(stage, runStart)}</div>`,
    `<details class="params"><summary>params</summary><pre>${pretty(stage.params ?? {})}</pre></details>`,
    `</article>`
  ].join("")
}

const attributesText = (attributes: Readonly<Record<string, string | number | boolean>>): string =>
  Object.entries(attributes).map(([k, v]) => `${k}=${typeof v === "number" ? number(v) : String(v)}`).join(" ")

// Span events: an exception's stack trace for a failed stage; series of numeric events (epochs)
// charted when the stage's output carries no metrics of its own; every event listed.
const spanEventsBlock = (stage: StageView, runStart: number): string => {
  const exception = stage.spanEvents.find((e) => e.name === "exception" && typeof e.attributes["exception.stacktrace"] === "string")
  const stack = stage.state === "failed" && exception !== undefined ? `<details class="stack"><summary>stack trace</summary><pre>${escape(String(exception.attributes["exception.stacktrace"]))}</pre></details>` : ""
  // Merge diagnostics have their own section (Diagnostics.ts).
  const others = stage.spanEvents.filter((e) => e.name !== "exception" && e.name !== Diagnostics.EVENT)
  if (others.length === 0) return stack
  const hasMetrics = (stage.output as { type?: unknown } | undefined)?.type === "metrics"
  const groups = new Map<string, Array<Record<string, unknown>>>()
  for (const e of others) groups.set(e.name, [...(groups.get(e.name) ?? []), e.attributes])
  const charts = hasMetrics ? [] : [...groups].filter(([, rows]) => rows.length >= 2).flatMap(([name, rows]) => MetricsView.render({ [name]: rows }).blocks.filter((b) => b.startsWith("<svg")))
  const shown = others.slice(0, 200)
  const rows = shown.map((e) => `<tr><td>+${escape(duration(Math.max(0, e.time - runStart)))}</td><td>${escape(e.span)}</td><td>${escape(e.name)}</td><td>${escape(clip(attributesText(e.attributes), 300))}</td></tr>`)
  return [
    stack,
    charts.length === 0 ? "" : `<div class="charts">${charts.join("")}</div>`,
    `<details class="span-events"><summary>span events (${others.length})</summary><table><tbody>${rows.join("")}</tbody></table>`,
    others.length > shown.length ? `<p class="note">${others.length - shown.length} more not shown</p>` : "",
    `</details>`
  ].join("")
}
