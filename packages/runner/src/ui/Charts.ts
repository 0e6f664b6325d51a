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

/** @category models */
export interface ChartLayout {
  readonly spec: ChartSpec
  readonly width: number
  readonly height: number
  readonly plot: { readonly left: number; readonly top: number; readonly width: number; readonly height: number }
  readonly x: { readonly min: number; readonly max: number; readonly ticks: ReadonlyArray<number> }
  readonly y: { readonly min: number; readonly max: number; readonly ticks: ReadonlyArray<number> }
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
export const niceDomain = (lo: number, hi: number, target = 5): { readonly min: number; readonly max: number; readonly ticks: ReadonlyArray<number> } => {
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
  const px = (v: number) => plot.left + ((v - x.min) / (x.max - x.min)) * plot.width
  const py = (v: number) => plot.top + plot.height - ((v - y.min) / (y.max - y.min)) * plot.height
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
  const px = (v: number) => plot.left + ((v - chart.x.min) / (chart.x.max - chart.x.min)) * plot.width
  const py = (v: number) => plot.top + plot.height - ((v - chart.y.min) / (chart.y.max - chart.y.min)) * plot.height
  const bottom = plot.top + plot.height
  const out: Array<string> = [
    `<svg class="chart" data-chart="${escape(spec.id)}" xmlns="http://www.w3.org/2000/svg" width="${chart.width}" height="${chart.height}" viewBox="0 0 ${chart.width} ${chart.height}" role="img" aria-label="${escape(spec.title)}">`,
    `<text class="chart-title" x="${plot.left}" y="16">${escape(spec.title)}</text>`
  ]
  for (const t of chart.y.ticks) out.push(`<line class="grid" x1="${plot.left}" x2="${plot.left + plot.width}" y1="${num(py(t))}" y2="${num(py(t))}"/><text class="axis-label" x="${plot.left - 6}" y="${num(py(t) + 4)}" text-anchor="end">${escape(number(t))}</text>`)
  for (const t of chart.x.ticks) out.push(`<line class="grid" x1="${num(px(t))}" x2="${num(px(t))}" y1="${plot.top}" y2="${bottom}"/><text class="axis-label" x="${num(px(t))}" y="${bottom + 14}" text-anchor="middle">${escape(number(t))}</text>`)
  out.push(`<rect class="frame" x="${plot.left}" y="${plot.top}" width="${plot.width}" height="${plot.height}" fill="none"/>`)
  out.push(`<text class="axis-title" x="${plot.left + plot.width / 2}" y="${chart.height - 6}" text-anchor="middle">${escape(spec.xLabel)}</text>`)
  out.push(`<text class="axis-title" transform="translate(12,${plot.top + plot.height / 2}) rotate(-90)" text-anchor="middle">${escape(spec.yLabel)}</text>`)
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
