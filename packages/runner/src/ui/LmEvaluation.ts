/**
 * Language-model evaluations on the dashboard. An `lm/evaluate` stage outputs metrics
 * `{ dataset, tokens, loss, perplexity, accuracy, groups: { <group>: { tokens, loss, perplexity,
 * accuracy } } }`; its card shows the groups as a table and a bar chart of perplexity per group,
 * and when a run has several such evaluations of one data set the run page compares them —
 * models × groups, as a table with the lowest perplexity of each column marked and a grouped bar
 * chart: the "merge → evaluate → choose" view.
 *
 * Recognised by shape, not by kind name (as all metrics are), so a user's kind that reports the
 * same fields is drawn the same way.
 *
 * @since 0.1.0
 */
import * as Charts from "./Charts.ts"
import { escape, number } from "./Html.ts"
import type { StageView } from "./RunView.ts"

/** One group's (or the whole data set's) figures. @category models */
export interface GroupFigures {
  readonly group: string
  readonly perplexity: number
  readonly accuracy?: number | undefined
  readonly tokens?: number | undefined
  readonly loss?: number | undefined
}

/** An evaluation as read from metrics values. @category models */
export interface Evaluation {
  readonly dataset?: string | undefined
  /** The figures over the whole data set, when the values carry them. */
  readonly all?: GroupFigures | undefined
  readonly groups: ReadonlyArray<GroupFigures>
}

const isRecord = (v: unknown): v is Readonly<Record<string, unknown>> => typeof v === "object" && v !== null && !Array.isArray(v)
const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v)
const opt = (v: unknown): number | undefined => (isNum(v) ? v : undefined)

/** The figures a group (and the whole data set) reports. @category constants */
export const FIELDS = ["perplexity", "accuracy", "tokens", "loss"] as const

const figures = (group: string, r: Readonly<Record<string, unknown>>): GroupFigures | undefined =>
  isNum(r.perplexity) ? { group, perplexity: r.perplexity, accuracy: opt(r.accuracy), tokens: opt(r.tokens), loss: opt(r.loss) } : undefined

/**
 * The evaluation in `values`, or undefined when they do not have its shape: `groups` an object whose
 * every value has a finite `perplexity` (at least one group).
 */
export const read = (values: unknown): Evaluation | undefined => {
  if (!isRecord(values) || !isRecord(values.groups)) return undefined
  const entries = Object.entries(values.groups)
  if (entries.length === 0) return undefined
  const groups: Array<GroupFigures> = []
  for (const [name, v] of entries) {
    const f = isRecord(v) ? figures(name, v) : undefined
    if (f === undefined) return undefined
    groups.push(f)
  }
  return { dataset: typeof values.dataset === "string" ? values.dataset : undefined, all: figures("all", values), groups }
}

const cell = (v: number | undefined, format: (x: number) => string = number): string => (v === undefined ? "" : escape(format(v)))
const pct = (x: number): string => `${(100 * x).toFixed(2)}%`

/** The card's table: a row per group (and the whole data set last), perplexity, accuracy, tokens, loss. */
export const groupTable = (evaluation: Evaluation): string => {
  const rows = [...evaluation.groups, ...(evaluation.all === undefined ? [] : [evaluation.all])]
  return [
    `<table class="lm-groups"><thead><tr><th>group</th><th>perplexity</th><th>accuracy</th><th>tokens</th><th>loss</th></tr></thead><tbody>`,
    ...rows.map((r) => `<tr data-group="${escape(r.group)}"${r === evaluation.all ? ` class="all"` : ""}><th>${escape(r.group)}</th><td>${cell(r.perplexity)}</td><td>${cell(r.accuracy, pct)}</td><td>${cell(r.tokens)}</td><td>${cell(r.loss)}</td></tr>`),
    `</tbody></table>`
  ].join("")
}

/** The card's chart: perplexity per group. */
export const groupChart = (evaluation: Evaluation): string =>
  Charts.barChart({
    id: "groups:perplexity",
    title: `perplexity per group${evaluation.dataset === undefined ? "" : ` (${evaluation.dataset})`}`,
    xLabel: "group",
    yLabel: "perplexity (lower is better)",
    categories: evaluation.groups.map((g) => g.group),
    series: [{ name: "perplexity", values: evaluation.groups.map((g) => g.perplexity) }]
  })

/** One evaluated model in a comparison. @category models */
export interface Compared {
  /** The stage that evaluated it. */
  readonly stage: string
  /** What the row is called: the evaluated model's stage (`with.model`), else the stage itself. */
  readonly label: string
  readonly evaluation: Evaluation
}

/**
 * The succeeded stages whose output is an evaluation, by data set (in stage order), each data set
 * only when at least two stages evaluated it. Rows are named after the model they evaluated
 * (`with: { model: ties }` → `ties`), or after the stage when two rows would share a name.
 */
export const comparisons = (stages: ReadonlyArray<Pick<StageView, "id" | "state" | "params" | "output">>): ReadonlyArray<{ readonly dataset: string; readonly rows: ReadonlyArray<Compared> }> => {
  const found: Array<{ stage: string; model: string | undefined; evaluation: Evaluation }> = []
  for (const s of stages) {
    if (s.state !== "succeeded" || !isRecord(s.output) || s.output.type !== "metrics") continue
    const evaluation = read(s.output.values)
    if (evaluation === undefined) continue
    const model = isRecord(s.params) && typeof s.params.model === "string" ? s.params.model : undefined
    found.push({ stage: s.id, model, evaluation })
  }
  const byDataset = new Map<string, Array<(typeof found)[number]>>()
  for (const f of found) {
    const dataset = f.evaluation.dataset ?? ""
    byDataset.set(dataset, [...(byDataset.get(dataset) ?? []), f])
  }
  return [...byDataset].filter(([, list]) => list.length >= 2).map(([dataset, list]) => {
    const count = (m: string | undefined) => list.filter((f) => f.model === m).length
    return { dataset, rows: list.map((f) => ({ stage: f.stage, label: f.model !== undefined && count(f.model) === 1 ? f.model : f.stage, evaluation: f.evaluation })) }
  })
}

/** The groups of a comparison, in the order first met. */
const groupsOf = (rows: ReadonlyArray<Compared>): ReadonlyArray<string> => [...new Set(rows.flatMap((r) => r.evaluation.groups.map((g) => g.group)))]

const perplexityOf = (row: Compared, group: string): number | undefined =>
  group === "all" ? row.evaluation.all?.perplexity : row.evaluation.groups.find((g) => g.group === group)?.perplexity

/** The comparison table: a row per model, a perplexity column per group (and `all`); each column's lowest is marked `best`. */
const comparisonTable = (dataset: string, rows: ReadonlyArray<Compared>): string => {
  const groups = groupsOf(rows)
  const columns = rows.some((r) => r.evaluation.all !== undefined) ? [...groups, "all"] : groups
  const best = new Map(columns.map((c) => {
    const values = rows.map((r) => perplexityOf(r, c)).filter(isNum)
    return [c, values.length === 0 ? undefined : Math.min(...values)] as const
  }))
  const td = (r: Compared, c: string) => {
    const v = perplexityOf(r, c)
    const isBest = v !== undefined && v === best.get(c)
    return `<td data-group="${escape(c)}"${isBest ? ` class="best"` : ""}>${cell(v)}</td>`
  }
  return [
    `<table class="lm-compare" data-dataset="${escape(dataset)}"><thead><tr><th>model</th>${columns.map((c) => `<th>${escape(c)}</th>`).join("")}<th>accuracy (all)</th></tr></thead><tbody>`,
    ...rows.map((r) => `<tr data-stage="${escape(r.stage)}"><th><a href="#stage-${escape(r.stage)}">${escape(r.label)}</a></th>${columns.map((c) => td(r, c)).join("")}<td>${cell(r.evaluation.all?.accuracy, pct)}</td></tr>`),
    `</tbody></table>`
  ].join("")
}

/** The grouped bar chart: groups along x, one bar per model. */
const comparisonChart = (dataset: string, rows: ReadonlyArray<Compared>): string => {
  const groups = groupsOf(rows)
  return Charts.barChart({
    id: `compare:${dataset}`,
    // The data set heads the comparison already.
    title: "perplexity per group, by model",
    xLabel: "group",
    yLabel: "perplexity (lower is better)",
    categories: groups,
    series: rows.map((r) => ({ name: r.label, values: groups.map((g) => perplexityOf(r, g) ?? null) }))
  })
}

/**
 * The run page's comparison section: one table and chart per data set evaluated by two stages or
 * more. Always present (empty otherwise), so the live page can swap it in as stages finish.
 */
export const section = (stages: ReadonlyArray<Pick<StageView, "id" | "state" | "params" | "output">>): string => {
  const found = comparisons(stages)
  const body = found.map(({ dataset, rows }) =>
    `<div class="lm-comparison">${dataset === "" ? "" : `<h3>${escape(dataset)}</h3>`}<p class="note">perplexity per group (lower is better); the lowest of each column in bold</p>${comparisonTable(dataset, rows)}<div class="charts">${comparisonChart(dataset, rows)}</div></div>`
  )
  return `<section id="lm-section">${found.length === 0 ? "" : `<h2>Language models compared</h2>${body.join("")}`}</section>`
}
