/**
 * The HTML of the dashboard's pages — the run list and a run's page — as pure functions of the
 * view model. The same run page is served live by `crucible ui` and written as `report.html`; the
 * report differs only in being self-contained: a Content-Security-Policy that forbids any network
 * access, artifacts inlined as data URIs, and the run's data embedded as JSON.
 *
 * @since 0.1.0
 */
import { main as clientMain, type ClientConfig } from "./Client.ts"
import * as Dag from "./Dag.ts"
import { bytes, duration, escape, scriptJson } from "./Html.ts"
import * as LmEvaluation from "./LmEvaluation.ts"
import type { RunSummary, RunView } from "./RunView.ts"
import { type CardOptions, stageCard } from "./StageCard.ts"
import { css } from "./Style.ts"
import * as Timeline from "./Timeline.ts"

/** How a page is delivered. @category models */
export interface PageOptions extends CardOptions {
  /** `live`: served by `crucible ui`, follows the run; `report`: a file that needs nothing else. */
  readonly mode: "live" | "report"
}

const REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

const shell = (title: string, body: string, options: { readonly csp?: string; readonly bodyAttributes?: string } = {}): string =>
  [
    `<!doctype html><html lang="en"><head><meta charset="utf-8">`,
    options.csp === undefined ? "" : `<meta http-equiv="Content-Security-Policy" content="${options.csp}">`,
    // No favicon request: the report makes none at all, the dashboard none it cannot answer.
    `<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,"><title>${escape(title)}</title><style>${css}</style></head>`,
    `<body${options.bodyAttributes ?? ""}>${body}</body></html>`
  ].join("")

const time = (ms: number): string => (ms > 0 ? new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC") : "—")

/** The run list, newest first. */
export const runsPage = (runs: ReadonlyArray<RunSummary>, runsDir: string): string => {
  const rows = runs.map((r) =>
    `<tr data-run="${escape(r.runId)}"><td><a href="/runs/${encodeURIComponent(r.runId)}">${escape(r.runId)}</a></td><td>${escape(r.pipeline)}</td>` +
      `<td><span class="badge" data-status="${r.status}">${r.status}</span>${r.failed > 0 ? ` <span class="note">${r.failed} failed</span>` : ""}</td>` +
      `<td>${escape(time(r.startedAt))}</td><td>${r.durationMs === undefined ? "—" : escape(duration(r.durationMs))}</td><td>${r.stages}</td></tr>`
  )
  const table = runs.length === 0
    ? `<p class="note">No runs yet in ${escape(runsDir)}. Start one with <code>crucible run pipeline.yaml</code>.</p>`
    : `<table class="runs"><thead><tr><th>run</th><th>pipeline</th><th>status</th><th>started</th><th>duration</th><th>stages</th></tr></thead><tbody id="runs-body">${rows.join("")}</tbody></table>`
  // While a run is in progress, refresh the list so its status follows (a crashed run is not in progress).
  const refresh = runs.some((r) => r.status === "running") ? `<script>setTimeout(() => location.reload(), 3000)</script>` : ""
  return shell("Crucible runs", `<header><h1>Crucible runs</h1><span class="note">${escape(runsDir)}</span></header><main>${table}</main>${refresh}`)
}

/** A page for an error (unknown run, bad id). */
export const errorPage = (status: number, message: string): string =>
  shell(`${status} — Crucible`, `<header><a href="/">runs</a><h1>${status}</h1></header><main><p>${escape(message)}</p></main>`)

const filesSection = (view: RunView): string => {
  const table = (title: string, files: RunView["inputs"]) =>
    files.length === 0 ? "" : `<h3>${title}</h3><table><tbody>${files.map((f) => `<tr><td><code>${escape(f.path)}</code></td><td>${escape(bytes(f.bytes))}</td><td><code>${escape(f.sha256.slice(0, 16))}…</code></td></tr>`).join("")}</tbody></table>`
  const body = table("inputs", view.inputs) + table("outputs", view.outputs)
  return `<section id="files-section">${body === "" ? "" : `<h2>Files</h2>${body}`}</section>`
}

/** The timeline section (also swapped in by the live page after each stage event). */
const timelineSection = (view: RunView): string => {
  const states = new Map(view.stages.map((s) => [s.id, s.state] as const))
  const layout = Timeline.layout(view.spans, { states })
  const source = view.spansFrom === "trace" ? "from trace.json (OpenTelemetry spans)" : "from events.jsonl (the run's live events; spans come at the end)"
  const body = layout.rows.length === 0 ? `<p class="note">No spans yet.</p>` : `<div class="scroll">${Timeline.svg(layout)}</div>`
  return `<section id="timeline-section"><h2>Timeline</h2><p class="note" id="timeline-source" data-source="${view.spansFrom}">${source}</p>${body}</section>`
}

const runMeta = (view: RunView): string =>
  `<span id="run-meta" class="meta">started ${escape(time(view.startedAt))}${view.durationMs === undefined ? "" : ` · took ${escape(duration(view.durationMs))}`} · ${view.stages.length} stages${view.pipeline.file === undefined ? "" : ` · <code>${escape(view.pipeline.file)}</code>`}</span>`

/** A run's page: header, DAG, timeline, stage details, files, and the page script. */
export const runPage = (view: RunView, options: PageOptions): string => {
  const dag = Dag.layout(view.stages.map((s) => ({ id: s.id, kind: s.kind, dependsOn: s.dependsOn })))
  const states = new Map(view.stages.map((s) => [s.id, { state: s.state, progress: s.progress, cached: s.cached, sameAs: s.sameAs }] as const))
  const live = options.mode === "live" && view.status === "running"
  const config: ClientConfig = { live, runId: view.runId, eventCount: view.eventCount, eventsUrl: `/api/runs/${encodeURIComponent(view.runId)}/events` }
  const legend = ["pending", "running", "succeeded", "failed", "skipped", "interrupted"].map((s) => `<span class="badge" data-state="${s}">${s}</span>`).join("")
  const body = [
    `<header>${options.mode === "live" ? `<a href="/">runs</a>` : `<span class="note">Crucible run report</span>`}<h1>${escape(view.pipeline.name)}</h1>`,
    `<code>${escape(view.runId)}</code><span class="badge" id="run-status" data-status="${view.status}">${view.status}</span>${runMeta(view)}<span id="live-note" class="note">${live ? "live" : ""}</span></header>`,
    `<main>`,
    view.pipeline.description === undefined ? "" : `<p>${escape(view.pipeline.description)}</p>`,
    `<section id="dag-section"><h2>Pipeline</h2><div class="scroll" id="dag">${Dag.svg(dag, states)}</div><div class="legend-states">${legend}</div></section>`,
    timelineSection(view),
    LmEvaluation.section(view.stages),
    `<section id="stages-section"><h2>Stages</h2>${view.stages.map((s) => stageCard(s, view.startedAt, options)).join("")}</section>`,
    filesSection(view),
    options.mode === "report" ? `<p class="note">Written by Crucible at the end of the run; the run's data is embedded below as JSON (element #run-data).</p>` : "",
    `</main>`,
    options.mode === "report" ? `<script type="application/json" id="run-data">${scriptJson(view)}</script>` : "",
    `<script>(${clientMain.toString()})(${scriptJson(config)})</script>`
  ].join("")
  return shell(`${view.pipeline.name} · ${view.runId} — Crucible`, body, {
    ...(options.mode === "report" ? { csp: REPORT_CSP } : {}),
    bodyAttributes: ` data-mode="${options.mode}" data-run="${escape(view.runId)}" data-status="${view.status}"`
  })
}
