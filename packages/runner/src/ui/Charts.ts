/**
 * Line charts as SVG text, from pure functions: no chart library, no DOM, so the live page and the
 * self-contained report draw the same pixels. A chart is first laid out (domains, round ticks,
 * every point's pixel position — what the tests check), then rendered.
 *
 * Two dedicated charts build on it: the interpolation path (loss and accuracy against λ, with the
 * straight line between the endpoints and the barrier marked, as in Frankle et al. 2020) and the
 * training curves (loss and accuracy per epoch, validation dashed).
 *
 * @since 0.1.0
 */
import { escape, num, number } from "./Html.ts"

/** @category models */
export interface Series {
  readonly name: string
  /** Non-finite y values (a class with no samples) are left out, not drawn as zero. */
  readonly points: ReadonlyArray<{ readonly x: number; readonly y: number | null }>
  readonly dashed?: boolean
}

/** A straight segment in data coordinates, with an optional label at its upper end. @category models */
export interface Annotation {
  readonly x1: number
  readonly y1: number
  readonly x2: number
  readonly y2: number
  readonly label?: string
  readonly kind: "reference" | "barrier"
}

/** @category models */
export interface ChartSpec {
  readonly id: string
  readonly title: string
  readonly xLabel: string
  readonly yLabel: string
  readonly series: ReadonlyArray<Series>
  readonly annotations?: ReadonlyArray<Annotation>
  readonly width?: number
  readonly height?: number
}

/** The plotting area of a chart, in pixels. @category models */
export interface Plot {
  readonly left: number
  readonly top: number
  readonly width: number
  readonly height: number
}

/** An axis's domain and its tick values. @category models */
export interface Axis {
  readonly min: number
  readonly max: number
  readonly ticks: ReadonlyArray<number>
}

/** @category models */
export interface ChartLayout {
  readonly spec: ChartSpec
  readonly width: number
  readonly height: number
  readonly plot: Plot
  readonly x: Axis
  readonly y: Axis
  readonly series: ReadonlyArray<{ readonly name: string; readonly color: string; readonly dashed: boolean; readonly points: ReadonlyArray<{ readonly x: number; readonly y: number; readonly px: number; readonly py: number }> }>
}

/** Series colours (colour-blind-safe Tableau 10 subset). */
export const COLORS = ["#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2", "#edc948", "#9c755f"] as const

const MARGIN = { left: 56, right: 14, top: 44, bottom: 40 }

/** A round step (1, 2, 2.5 or 5 × 10^k) giving about `target` intervals over `[lo, hi]`. */
export const niceStep = (lo: number, hi: number, target = 5): number => {
  const span = hi - lo
  if (!(span > 0)) return 1
  const raw = span / target
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  return [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw * 0.999) ?? 10 * magnitude
}

/** The domain `[lo, hi]` widened to round ticks, and the ticks. A flat domain is widened around its value. */
export const niceDomain = (lo: number, hi: number, target = 5): Axis => {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return { min: 0, max: 1, ticks: [0, 0.5, 1] }
  if (hi === lo) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1
    return niceDomain(lo - pad, hi + pad, target)
  }
  const step = niceStep(lo, hi, target)
  // Ticks are integer multiples of the step, rounded to the step's decimals (−3 · 0.1 reads −0.3).
  const decimals = Math.max(0, 1 - Math.floor(Math.log10(step)))
  const at = (k: number) => Number((k * step).toFixed(decimals)) + 0
  const first = Math.floor(lo / step + 1e-9)
  const last = Math.ceil(hi / step - 1e-9)
  const ticks: Array<number> = []
  for (let k = first; k <= last; k++) ticks.push(at(k))
  const min = at(first)
  const max = at(last)
  return { min, max, ticks }
}

const finite = (y: number | null): y is number => typeof y === "number" && Number.isFinite(y)

type Domain = { readonly min: number; readonly max: number }
/** What the renderers of line and bar charts read of a layout. */
interface Frame {
  readonly spec: { readonly id: string; readonly title: string; readonly xLabel: string; readonly yLabel: string }
  readonly width: number
  readonly height: number
  readonly plot: Plot
}

/** The pixel of a value on the plot's x axis over `d` (left to right). */
const xPixel = (plot: Plot, d: Domain) => (v: number) => plot.left + ((v - d.min) / (d.max - d.min)) * plot.width
/** The pixel of a value on the plot's y axis over `d` (bottom to top). */
const yPixel = (plot: Plot, d: Domain) => (v: number) => plot.top + plot.height - ((v - d.min) / (d.max - d.min)) * plot.height

/** The `<svg>` opening (class `cls`) and the chart's title. */
const svgHead = (cls: string, chart: Frame): Array<string> => [
  `<svg class="${cls}" data-chart="${escape(chart.spec.id)}" xmlns="http://www.w3.org/2000/svg" width="${chart.width}" height="${chart.height}" viewBox="0 0 ${chart.width} ${chart.height}" role="img" aria-label="${escape(chart.spec.title)}">`,
  `<text class="chart-title" x="${chart.plot.left}" y="16">${escape(chart.spec.title)}</text>`
]

/** A horizontal grid line and its label for each y tick. */
const yGrid = (plot: Plot, ticks: ReadonlyArray<number>, py: (v: number) => number): Array<string> =>
  ticks.map((t) => `<line class="grid" x1="${plot.left}" x2="${plot.left + plot.width}" y1="${num(py(t))}" y2="${num(py(t))}"/><text class="axis-label" x="${plot.left - 6}" y="${num(py(t) + 4)}" text-anchor="end">${escape(number(t))}</text>`)

/** The plot's frame. */
const frameRect = (plot: Plot): string => `<rect class="frame" x="${plot.left}" y="${plot.top}" width="${plot.width}" height="${plot.height}" fill="none"/>`

/** The x and y axis titles. */
const axisTitles = (chart: Frame): Array<string> => [
  `<text class="axis-title" x="${chart.plot.left + chart.plot.width / 2}" y="${chart.height - 6}" text-anchor="middle">${escape(chart.spec.xLabel)}</text>`,
  `<text class="axis-title" transform="translate(12,${chart.plot.top + chart.plot.height / 2}) rotate(-90)" text-anchor="middle">${escape(chart.spec.yLabel)}</text>`
]

/** Domains, ticks and pixel positions of a chart. */
export const layout = (spec: ChartSpec): ChartLayout => {
  const width = spec.width ?? 440
  const height = spec.height ?? 260
  const plot = { left: MARGIN.left, top: MARGIN.top, width: width - MARGIN.left - MARGIN.right, height: height - MARGIN.top - MARGIN.bottom }
  const points = spec.series.flatMap((s) => s.points.filter((p) => finite(p.y) && Number.isFinite(p.x)))
  const extra = (spec.annotations ?? []).flatMap((a) => [{ x: a.x1, y: a.y1 }, { x: a.x2, y: a.y2 }])
  const xs = [...points, ...extra].map((p) => p.x)
  const ys = [...points.map((p) => p.y as number), ...extra.map((p) => p.y)]
  const x = niceDomain(Math.min(...xs), Math.max(...xs))
  const y = niceDomain(Math.min(...ys), Math.max(...ys))
  const px = xPixel(plot, x)
  const py = yPixel(plot, y)
  return {
    spec,
    width,
    height,
    plot,
    x,
    y,
    series: spec.series.map((s, i) => ({
      name: s.name,
      color: COLORS[i % COLORS.length]!,
      dashed: s.dashed === true,
      points: s.points.filter((p): p is { x: number; y: number } => finite(p.y) && Number.isFinite(p.x)).map((p) => ({ x: p.x, y: p.y, px: px(p.x), py: py(p.y) }))
    }))
  }
}

/** Renders a laid-out chart. */
export const render = (chart: ChartLayout): string => {
  const { plot, spec } = chart
  const px = xPixel(plot, chart.x)
  const py = yPixel(plot, chart.y)
  const bottom = plot.top + plot.height
  const out = svgHead("chart", chart)
  out.push(...yGrid(plot, chart.y.ticks, py))
  for (const t of chart.x.ticks) out.push(`<line class="grid" x1="${num(px(t))}" x2="${num(px(t))}" y1="${plot.top}" y2="${bottom}"/><text class="axis-label" x="${num(px(t))}" y="${bottom + 14}" text-anchor="middle">${escape(number(t))}</text>`)
  out.push(frameRect(plot))
  out.push(...axisTitles(chart))
  for (const a of spec.annotations ?? []) {
    out.push(`<line class="annotation annotation-${a.kind}" x1="${num(px(a.x1))}" y1="${num(py(a.y1))}" x2="${num(px(a.x2))}" y2="${num(py(a.y2))}" stroke="${a.kind === "barrier" ? "#d62728" : "#888"}" stroke-dasharray="${a.kind === "barrier" ? "none" : "4 3"}" stroke-width="${a.kind === "barrier" ? 2 : 1}"/>`)
    // The label sits beside the middle of its segment, inside the plot.
    if (a.label !== undefined) {
      const x = px(a.x2)
      const right = x + 6 + a.label.length * 6.5 <= plot.left + plot.width
      out.push(`<text class="annotation-label" x="${num(right ? x + 5 : x - 5)}" y="${num((py(a.y1) + py(a.y2)) / 2 + 4)}" text-anchor="${right ? "start" : "end"}" fill="#d62728">${escape(a.label)}</text>`)
    }
  }
  for (const s of chart.series) {
    const pts = s.points.map((p) => `${num(p.px)},${num(p.py)}`).join(" ")
    out.push(`<polyline class="series" data-series="${escape(s.name)}" points="${pts}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ` stroke-dasharray="5 3"` : ""}/>`)
    for (const p of s.points) out.push(`<circle cx="${num(p.px)}" cy="${num(p.py)}" r="2.5" fill="${s.color}"><title>${escape(`${s.name}: ${number(p.x)}, ${number(p.y)}`)}</title></circle>`)
  }
  // The legend: one row above the plot, right-aligned, so it never covers data.
  let lx = plot.left + plot.width
  for (const s of [...chart.series].reverse()) {
    lx -= 24 + s.name.length * 6.2
    out.push(`<line x1="${num(lx)}" x2="${num(lx + 16)}" y1="${plot.top - 10}" y2="${plot.top - 10}" stroke="${s.color}" stroke-width="2"${s.dashed ? ` stroke-dasharray="5 3"` : ""}/><text class="legend" x="${num(lx + 20)}" y="${plot.top - 6}">${escape(s.name)}</text>`)
  }
  out.push(`</svg>`)
  return out.join("")
}

/** Lays out and renders a chart. */
export const lineChart = (spec: ChartSpec): string => render(layout(spec))

/** One point of an interpolation path. @category models */
export interface CurvePoint {
  readonly lambda: number
  readonly loss: number
  readonly accuracy?: number | null
}

/** A barrier as stages report it: one number (the loss barrier), or both barriers and where. @category models */
export type BarrierValue = number | { readonly loss?: number; readonly lossAt?: number; readonly accuracy?: number; readonly accuracyAt?: number }

/**
 * The largest gap between a path and the straight line through its endpoints, and its λ:
 * `max_λ sign·[f(λ) − ((1−λ)·f(0) + λ·f(1))]` (sign +1 for loss, −1 for accuracy).
 */
export const gap = (points: ReadonlyArray<{ readonly lambda: number; readonly value: number }>, sign: 1 | -1): { readonly value: number; readonly at: number } | undefined => {
  const sorted = [...points].sort((a, b) => a.lambda - b.lambda)
  const first = sorted[0]
  const last = sorted[sorted.length - 1]
  if (first === undefined || last === undefined || last.lambda === first.lambda) return undefined
  let best: { value: number; at: number } | undefined
  for (const p of sorted) {
    const t = (p.lambda - first.lambda) / (last.lambda - first.lambda)
    const g = sign * (p.value - ((1 - t) * first.value + t * last.value))
    if (best === undefined || g > best.value) best = { value: g, at: p.lambda }
  }
  return best
}

const barrierChart = (id: string, title: string, yLabel: string, name: string, pts: ReadonlyArray<{ lambda: number; value: number }>, sign: 1 | -1, reported?: { value?: number | undefined; at?: number | undefined }): string => {
  const sorted = [...pts].sort((a, b) => a.lambda - b.lambda)
  const first = sorted[0]
  const last = sorted[sorted.length - 1]
  const annotations: Array<Annotation> = []
  const found = gap(sorted, sign)
  if (first !== undefined && last !== undefined && found !== undefined) {
    annotations.push({ kind: "reference", x1: first.lambda, y1: first.value, x2: last.lambda, y2: last.value })
    const at = reported?.at ?? found.at
    const onPath = sorted.find((p) => p.lambda === at) ?? sorted.find((p) => p.lambda === found.at)!
    const t = (onPath.lambda - first.lambda) / (last.lambda - first.lambda)
    const line = (1 - t) * first.value + t * last.value
    const value = reported?.value ?? found.value
    annotations.push({ kind: "barrier", x1: onPath.lambda, y1: line, x2: onPath.lambda, y2: onPath.value, label: `barrier ${number(value)}` })
  }
  return lineChart({ id, title, xLabel: "λ", yLabel, series: [{ name, points: sorted.map((p) => ({ x: p.lambda, y: p.value })) }], annotations })
}

/** Loss and accuracy along an interpolation path, the loss (and accuracy) barrier marked. */
export const interpolationCharts = (id: string, curve: ReadonlyArray<CurvePoint>, barrier?: BarrierValue): ReadonlyArray<string> => {
  const reported = typeof barrier === "number" ? { loss: barrier } : (barrier ?? {})
  const loss = curve.filter((p) => Number.isFinite(p.loss)).map((p) => ({ lambda: p.lambda, value: p.loss }))
  const accuracy = curve.flatMap((p) => (typeof p.accuracy === "number" && Number.isFinite(p.accuracy) ? [{ lambda: p.lambda, value: p.accuracy }] : []))
  const out = [barrierChart(`${id}:loss`, `${id}: loss along the path`, "loss", "loss", loss, 1, { value: reported.loss, at: reported.lossAt })]
  if (accuracy.length > 0) out.push(barrierChart(`${id}:accuracy`, `${id}: accuracy along the path`, "accuracy", "accuracy", accuracy, -1, { value: reported.accuracy, at: reported.accuracyAt }))
  return out
}

/** One epoch of training. @category models */
export interface EpochPoint {
  readonly epoch: number
  readonly loss?: number | null
  readonly accuracy?: number | null
  readonly valLoss?: number | null
  readonly valAccuracy?: number | null
}

/** Loss and accuracy per epoch; validation (when present) dashed beside training. */
export const epochCharts = (id: string, epochs: ReadonlyArray<EpochPoint>): ReadonlyArray<string> => {
  const series = (name: string, pick: (e: EpochPoint) => number | null | undefined, dashed = false): ReadonlyArray<Series> => {
    const points = epochs.map((e) => ({ x: e.epoch, y: pick(e) ?? null }))
    return points.some((p) => finite(p.y)) ? [{ name, points, dashed }] : []
  }
  const charts: Array<string> = []
  const loss = [...series("train loss", (e) => e.loss), ...series("validation loss", (e) => e.valLoss, true)]
  const accuracy = [...series("train accuracy", (e) => e.accuracy), ...series("validation accuracy", (e) => e.valAccuracy, true)]
  if (loss.length > 0) charts.push(lineChart({ id: `${id}:loss`, title: `${id}: loss per epoch`, xLabel: "epoch", yLabel: "loss", series: loss }))
  if (accuracy.length > 0) charts.push(lineChart({ id: `${id}:accuracy`, title: `${id}: accuracy per epoch`, xLabel: "epoch", yLabel: "accuracy", series: accuracy }))
  return charts
}

/** One series of a bar chart: a value per category (null: no value, no bar). @category models */
export interface BarSeries {
  readonly name: string
  readonly values: ReadonlyArray<number | null>
}

/** Bars per category, one per series side by side (a grouped bar chart when there are several series). @category models */
export interface BarSpec {
  readonly id: string
  readonly title: string
  readonly xLabel: string
  readonly yLabel: string
  readonly categories: ReadonlyArray<string>
  readonly series: ReadonlyArray<BarSeries>
  readonly width?: number
  readonly height?: number
}

/** @category models */
export interface Bar {
  readonly category: string
  readonly series: string
  readonly value: number
  readonly color: string
  /** The bar's rectangle in pixels: from the zero line up to the value. */
  readonly x: number
  readonly y: number
  readonly width: number
  readonly height: number
}

/** @category models */
export interface BarLayout {
  readonly spec: BarSpec
  readonly width: number
  readonly height: number
  readonly plot: Plot
  readonly y: Axis
  /** Each category's slot: its centre, where its label goes. */
  readonly categories: ReadonlyArray<{ readonly name: string; readonly center: number }>
  readonly bars: ReadonlyArray<Bar>
  /** Legend items, wrapped into rows above the plot (none for a single series: the title names it). */
  readonly legend: ReadonlyArray<{ readonly name: string; readonly color: string; readonly x: number; readonly y: number }>
}

/** Bar colours: the line charts' and the rest of Tableau 10, so ten models get ten colours. */
const BAR_COLORS = [...COLORS, "#ff9da7", "#bab0ac"] as const

// Text widths are estimated (12px system-ui ≈ 6.5 px per character), as the line chart's legend does.
const CHAR = 6.5
const legendWidth = (name: string) => 24 + name.length * 6.2

/**
 * Domain, bars and labels of a bar chart. Bars start at zero (a bar's length is its value), so the
 * y domain always includes 0. Unless a width is given, the chart is as wide as its bars and
 * category labels need (at least 440 px), so labels are never cut.
 */
export const barLayout = (spec: BarSpec): BarLayout => {
  const n = Math.max(1, spec.series.length)
  const longest = Math.max(0, ...spec.categories.map((c) => c.length))
  const slotMin = Math.max(n * 14 + 16, longest * CHAR + 10)
  // The title (bold, ≈ 7 px a character) is never cut either.
  const width = spec.width ?? Math.max(440, Math.ceil(MARGIN.left + MARGIN.right + Math.max(1, spec.categories.length) * slotMin), Math.ceil(MARGIN.left + spec.title.length * 7 + MARGIN.right))
  // The legend wraps into as many rows as it needs; the plot starts below them.
  const legend: Array<{ name: string; color: string; x: number; y: number }> = []
  const usable = width - MARGIN.left - MARGIN.right
  let row = 0
  let lx = 0
  if (spec.series.length > 1) {
    spec.series.forEach((s, i) => {
      const w = legendWidth(s.name)
      if (lx > 0 && lx + w > usable) (row++, lx = 0)
      legend.push({ name: s.name, color: BAR_COLORS[i % BAR_COLORS.length]!, x: MARGIN.left + lx, y: 34 + row * 16 })
      lx += w
    })
  }
  const top = legend.length === 0 ? 32 : 34 + row * 16 + 12
  const height = (spec.height ?? 260) + (top - MARGIN.top)
  const plot = { left: MARGIN.left, top, width: usable, height: height - top - MARGIN.bottom }
  const values = spec.series.flatMap((s) => s.values.filter(finite))
  const y = niceDomain(Math.min(0, ...values), Math.max(0, ...values))
  const py = yPixel(plot, y)
  const slot = plot.width / Math.max(1, spec.categories.length)
  const barWidth = (slot * 0.8) / n
  const bars: Array<Bar> = []
  spec.categories.forEach((category, c) => {
    spec.series.forEach((s, i) => {
      const value = s.values[c]
      if (!finite(value ?? null)) return
      const v = value as number
      const x = plot.left + c * slot + slot * 0.1 + i * barWidth
      const top = Math.min(py(v), py(0))
      bars.push({ category, series: s.name, value: v, color: BAR_COLORS[i % BAR_COLORS.length]!, x, y: top, width: barWidth, height: Math.abs(py(v) - py(0)) })
    })
  })
  return { spec, width, height, plot, y, categories: spec.categories.map((name, c) => ({ name, center: plot.left + (c + 0.5) * slot })), bars, legend }
}

/** Renders a laid-out bar chart; each bar has a tooltip, and with one series its value is written above it. */
export const renderBars = (chart: BarLayout): string => {
  const { plot, spec } = chart
  const py = yPixel(plot, chart.y)
  const bottom = plot.top + plot.height
  const out = svgHead("chart bar-chart", chart)
  out.push(...yGrid(plot, chart.y.ticks, py))
  out.push(frameRect(plot))
  for (const c of chart.categories) out.push(`<text class="axis-label category" x="${num(c.center)}" y="${bottom + 14}" text-anchor="middle">${escape(c.name)}</text>`)
  out.push(...axisTitles(chart))
  const single = spec.series.length === 1
  for (const b of chart.bars) {
    out.push(`<rect class="bar" data-category="${escape(b.category)}" data-series="${escape(b.series)}" data-value="${b.value}" x="${num(b.x)}" y="${num(b.y)}" width="${num(b.width)}" height="${num(b.height)}" fill="${b.color}"><title>${escape(`${single ? "" : `${b.series} · `}${b.category}: ${number(b.value)}`)}</title></rect>`)
    if (single) out.push(`<text class="bar-value" x="${num(b.x + b.width / 2)}" y="${num(b.y - 4)}" text-anchor="middle">${escape(number(b.value))}</text>`)
  }
  for (const l of chart.legend) out.push(`<rect x="${num(l.x)}" y="${l.y - 9}" width="16" height="10" fill="${l.color}"/><text class="legend" x="${num(l.x + 20)}" y="${l.y}">${escape(l.name)}</text>`)
  out.push(`</svg>`)
  return out.join("")
}

/** Lays out and renders a bar chart. */
export const barChart = (spec: BarSpec): string => renderBars(barLayout(spec))
