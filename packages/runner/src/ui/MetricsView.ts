/**
 * A metrics output (`{ values }`) as HTML, whatever its shape: numbers, strings and short lists in
 * one table (nested objects flattened to dotted names), interpolation paths (`[{ lambda, loss,
 * accuracy }]`, with a sibling `barrier`) and training curves (`[{ epoch, loss, … }]`) as their
 * dedicated charts, a language-model evaluation (`groups` of perplexities, LmEvaluation.ts) as a
 * table and a bar chart per group, text samples (`[{ prompt, continuation }]`) as text, and any
 * other list of objects with numeric fields as a line chart plus a table.
 *
 * @since 0.1.0
 */
import * as Charts from "./Charts.ts"
import { clip, escape, number } from "./Html.ts"
import * as LmEvaluation from "./LmEvaluation.ts"

/** What a metrics value renders to. @category models */
export interface MetricsHtml {
  /** The scalar table (empty when there are no scalars). */
  readonly table: string
  /** Charts (SVG) and tables of row lists, in the order found. */
  readonly blocks: ReadonlyArray<string>
}

const isRecord = (v: unknown): v is Readonly<Record<string, unknown>> => typeof v === "object" && v !== null && !Array.isArray(v)
const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v)

/** The x field of a list of rows: a conventional name, else the first field that only increases, else the index. */
const xFieldOf = (rows: ReadonlyArray<Readonly<Record<string, unknown>>>, fields: ReadonlyArray<string>): string | undefined => {
  const named = ["x", "lambda", "epoch", "step", "round", "iteration", "t"].find((f) => fields.includes(f))
  if (named !== undefined) return named
  return fields.find((f) => rows.every((r, i) => i === 0 || (r[f] as number) > (rows[i - 1]![f] as number)))
}

const numericFields = (rows: ReadonlyArray<Readonly<Record<string, unknown>>>): ReadonlyArray<string> => {
  const fields: Array<string> = []
  for (const r of rows) for (const [k, v] of Object.entries(r)) if (isNum(v) && !fields.includes(k)) fields.push(k)
  return fields.filter((f) => rows.every((r) => r[f] === undefined || r[f] === null || isNum(r[f])))
}

const rowTable = (name: string, rows: ReadonlyArray<Readonly<Record<string, unknown>>>): string => {
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))].slice(0, 12)
  const shown = rows.slice(0, 200)
  const cell = (v: unknown) => (isNum(v) ? number(v) : v === undefined ? "" : clip(typeof v === "string" ? v : JSON.stringify(v), 60))
  return [
    `<details class="rows"><summary>${escape(name)}: ${rows.length} rows</summary><table class="rows"><thead><tr>${columns.map((c) => `<th>${escape(c)}</th>`).join("")}</tr></thead><tbody>`,
    ...shown.map((r) => `<tr>${columns.map((c) => `<td>${escape(cell(r[c]))}</td>`).join("")}</tr>`),
    `</tbody></table>${rows.length > shown.length ? `<p class="note">${rows.length - shown.length} more rows not shown</p>` : ""}</details>`
  ].join("")
}

// A card shows this many samples at most; the output file has them all.
const SAMPLES_SHOWN = 50

/** Generated text (`lm/generate`'s `samples`): each prompt and its continuation in full, not cut as table cells are. */
const samplesBlock = (name: string, rows: ReadonlyArray<Readonly<Record<string, unknown>>>): string =>
  [
    `<div class="samples" data-metrics="${escape(name)}">`,
    ...rows.slice(0, SAMPLES_SHOWN).map((r) => `<p class="sample"><span class="prompt">${escape(r.prompt as string)}</span><span class="continuation">${escape(r.continuation as string)}</span></p>`),
    rows.length > SAMPLES_SHOWN ? `<p class="note">${rows.length - SAMPLES_SHOWN} more samples not shown</p>` : "",
    `</div>`
  ].join("")

const epochPoint = (r: Readonly<Record<string, unknown>>): Charts.EpochPoint => {
  const validation = isRecord(r.validation) ? r.validation : {}
  const pick = (...vs: ReadonlyArray<unknown>) => vs.find(isNum) ?? null
  return { epoch: r.epoch as number, loss: pick(r.loss), accuracy: pick(r.accuracy), valLoss: pick(r.valLoss, validation.loss), valAccuracy: pick(r.valAccuracy, validation.accuracy) }
}

/**
 * Fields grouped so that one chart never mixes scales: sorted by largest magnitude, a field joins
 * the current group while its magnitude is within 5× of the group's largest (counts and
 * accuracies get separate charts).
 */
export const byMagnitude = (rows: ReadonlyArray<Readonly<Record<string, unknown>>>, fields: ReadonlyArray<string>): ReadonlyArray<ReadonlyArray<string>> => {
  const size = (f: string) => Math.max(0, ...rows.map((r) => (isNum(r[f]) ? Math.abs(r[f]) : 0)))
  const sorted = [...fields].sort((a, b) => size(b) - size(a))
  const groups: Array<{ top: number; fields: Array<string> }> = []
  for (const f of sorted) {
    const last = groups[groups.length - 1]
    if (last !== undefined && size(f) * 5 >= last.top) last.fields.push(f)
    else groups.push({ top: size(f), fields: [f] })
  }
  // Each group keeps the fields' original order, for stable colours and legends.
  return groups.map((g) => fields.filter((f) => g.fields.includes(f)))
}

/** Renders the `values` of a metrics output. */
export const render = (values: Readonly<Record<string, unknown>>): MetricsHtml => {
  const scalars: Array<[string, string]> = []
  const blocks: Array<string> = []
  const visit = (value: unknown, name: string, parent: Readonly<Record<string, unknown>> | undefined, depth: number) => {
    if (Array.isArray(value) && value.length > 0 && value.every(isRecord)) {
      const rows = value as ReadonlyArray<Readonly<Record<string, unknown>>>
      if (rows.every((r) => typeof r.prompt === "string" && typeof r.continuation === "string")) {
        blocks.push(samplesBlock(name, rows))
        return
      }
      if (rows.every((r) => isNum(r.lambda) && isNum(r.loss))) {
        blocks.push(...Charts.interpolationCharts(name, rows as unknown as ReadonlyArray<Charts.CurvePoint>, parent?.barrier as Charts.BarrierValue | undefined))
      } else if (rows.every((r) => isNum(r.epoch))) {
        blocks.push(...Charts.epochCharts(name, rows.map(epochPoint)))
      } else {
        const fields = numericFields(rows)
        const x = xFieldOf(rows, fields)
        const ys = fields.filter((f) => f !== x).slice(0, Charts.COLORS.length)
        if (rows.length > 1) {
          for (const group of byMagnitude(rows, ys)) {
            blocks.push(Charts.lineChart({
              id: group.length === ys.length ? name : `${name}:${group.join(",")}`,
              title: group.length === ys.length ? name : `${name}: ${group.join(", ")}`,
              xLabel: x ?? "index",
              yLabel: group.length === 1 ? group[0]! : "value",
              series: group.map((f) => ({ name: f, points: rows.map((r, i) => ({ x: x === undefined ? i : (r[x] as number), y: isNum(r[f]) ? r[f] : null })) }))
            }))
          }
        }
      }
      blocks.push(rowTable(name, rows))
      return
    }
    if (Array.isArray(value) && value.length > 8 && value.every(isNum)) {
      blocks.push(Charts.lineChart({ id: name, title: name, xLabel: "index", yLabel: name, series: [{ name, points: value.map((y, i) => ({ x: i, y })) }] }))
      return
    }
    if (isRecord(value) && depth < 6) {
      for (const [k, v] of Object.entries(value)) visit(v, name === "" ? k : `${name}.${k}`, value, depth + 1)
      return
    }
    scalars.push([name, isNum(value) ? number(value) : typeof value === "string" ? value : clip(JSON.stringify(value) ?? String(value), 200)])
  }
  // A language-model evaluation: its groups (and the overall figures, as the table's last row) as one
  // table and a chart; other fields (the data set) as usual.
  const evaluation = LmEvaluation.read(values)
  if (evaluation === undefined) visit(values, "", undefined, 0)
  else {
    blocks.push(LmEvaluation.groupTable(evaluation), LmEvaluation.groupChart(evaluation))
    const shown = evaluation.all === undefined ? ["groups"] : ["groups", ...LmEvaluation.FIELDS]
    for (const [k, v] of Object.entries(values)) if (!shown.includes(k)) visit(v, k, values, 1)
  }
  const table = scalars.length === 0 ? "" : `<table class="metrics"><tbody>${scalars.map(([k, v]) => `<tr><th>${escape(k)}</th><td>${escape(v)}</td></tr>`).join("")}</tbody></table>`
  return { table, blocks }
}
