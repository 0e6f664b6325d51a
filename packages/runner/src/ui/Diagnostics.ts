/**
 * A merge's diagnostics on its stage card: the `merge.diagnostics` span events — one per merged
 * tensor: kept fractions and sign agreement (TIES, DARE, …), the angle Ω (SLERP), task-vector
 * norms — as a headline of their ranges, a table with a row per tensor, and charts over the
 * tensors (layer by layer, in the order they were merged).
 *
 * @since 0.1.0
 */
import { clip, escape, number } from "./Html.ts"
import * as MetricsView from "./MetricsView.ts"
import type { StageSpanEvent } from "./RunView.ts"

/** The span event a merge records per tensor (`Method.ts`). @category constants */
export const EVENT = "merge.diagnostics"

type Row = Readonly<Record<string, string | number | boolean>>

/** `agreement 0.61–0.93`: the range of each numeric field, for the headline. */
export const ranges = (rows: ReadonlyArray<Row>): ReadonlyArray<readonly [string, number, number]> => {
  const out = new Map<string, [number, number]>()
  for (const r of rows) {
    for (const [k, v] of Object.entries(r)) {
      if (typeof v !== "number" || !Number.isFinite(v)) continue
      const seen = out.get(k)
      out.set(k, seen === undefined ? [v, v] : [Math.min(seen[0], v), Math.max(seen[1], v)])
    }
  }
  return [...out].map(([k, [lo, hi]]) => [k, lo, hi] as const)
}

// The tensor first, then per-model fields side by side (`kept.0`, `kept.1`, then `tau_norm.0`…), groups in the order met.
const ordered = (keys: ReadonlyArray<string>): ReadonlyArray<string> => {
  const group = (k: string) => k.split(".")[0]!
  const groups = [...new Set(keys.map(group))]
  const rank = (k: string) => (k === "tensor" ? -1 : groups.indexOf(group(k)))
  return [...keys].sort((a, b) => rank(a) - rank(b))
}

const cell = (v: string | number | boolean | undefined): string => (v === undefined ? "" : typeof v === "number" ? number(v) : clip(String(v), 60))

/** The card's diagnostics section; empty when the stage recorded none. */
export const block = (events: ReadonlyArray<StageSpanEvent>): string => {
  const rows: ReadonlyArray<Row> = events.filter((e) => e.name === EVENT).map((e) => e.attributes)
  if (rows.length === 0) return ""
  const columns = ordered([...new Set(rows.flatMap((r) => Object.keys(r)))])
  const spans = new Map(ranges(rows).map(([k, lo, hi]) => [k, lo === hi ? number(lo) : `${number(lo)}–${number(hi)}`] as const))
  const headline = columns.flatMap((k) => (spans.has(k) ? [`${k} ${spans.get(k)}`] : [])).join(" · ")
  const shown = rows.slice(0, 200)
  const charts = rows.length < 2 ? [] : MetricsView.render({ [EVENT]: rows.map(({ tensor: _, ...numeric }) => numeric) }).blocks.filter((b) => b.startsWith("<svg"))
  return [
    `<section class="diagnostics"><h4>merge diagnostics <span class="meta">${rows.length} tensor${rows.length === 1 ? "" : "s"}</span></h4>`,
    `<p class="diagnostics-headline">${escape(headline)}</p>`,
    `<table class="rows diagnostics-table"><thead><tr>${columns.map((c) => `<th>${escape(c)}</th>`).join("")}</tr></thead><tbody>`,
    ...shown.map((r) => `<tr>${columns.map((c) => `<td>${escape(cell(r[c]))}</td>`).join("")}</tr>`),
    `</tbody></table>`,
    rows.length > shown.length ? `<p class="note">${rows.length - shown.length} more tensors not shown</p>` : "",
    charts.length === 0 ? "" : `<div class="charts">${charts.join("")}</div>`,
    `</section>`
  ].join("")
}
