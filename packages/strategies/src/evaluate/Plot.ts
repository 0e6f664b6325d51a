/**
 * An SVG plot of interpolation paths: loss against λ on the left, accuracy against λ on the
 * right, one coloured line per path (e.g. "naive" and "weight matching"). A pure function from
 * data to SVG text; writing it to a file is the caller's business.
 *
 * @since 0.1.0
 */
import type { Point } from "./Interpolation.ts"

/** One labelled path. */
export interface Curve {
  readonly label: string
  readonly points: ReadonlyArray<Point>
}

/** Options of {@link interpolationSvg}. */
export interface PlotOptions {
  readonly title?: string
  /** Total width in pixels (default 720). */
  readonly width?: number
  /** Total height in pixels (default 320). */
  readonly height?: number
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
const MARGIN = { left: 56, right: 16, top: 52, bottom: 40 }

/** Escapes text for SVG content and attribute values. */
export const escapeXml = (text: string): string =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&apos;")

const num = (x: number): string => (Math.round(x * 100) / 100).toString()

/** About five round tick values covering `[low, high]`. */
export const ticks = (low: number, high: number): ReadonlyArray<number> => {
  if (!(high > low)) return [low]
  const raw = (high - low) / 4
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw
  const out: Array<number> = []
  for (let v = Math.ceil(low / step - 1e-9) * step; v <= high + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)))
  return out
}

interface Panel {
  readonly x0: number
  readonly y0: number
  readonly w: number
  readonly h: number
  readonly low: number
  readonly high: number
}

const panelOf = (x0: number, w: number, height: number, values: ReadonlyArray<number>, clamp?: readonly [number, number]): Panel => {
  const finite = values.filter(Number.isFinite)
  let low = finite.length === 0 ? 0 : Math.min(...finite)
  let high = finite.length === 0 ? 1 : Math.max(...finite)
  if (high - low < 1e-9) {
    low -= 0.5
    high += 0.5
  }
  const pad = (high - low) * 0.05
  low -= pad
  high += pad
  if (clamp) {
    low = Math.max(clamp[0], low)
    high = Math.min(clamp[1], high)
  }
  return { x0, y0: MARGIN.top, w, h: height - MARGIN.top - MARGIN.bottom, low, high }
}

const px = (p: Panel, lambda: number): number => p.x0 + lambda * p.w
const py = (p: Panel, v: number): number => p.y0 + p.h - ((v - p.low) / (p.high - p.low)) * p.h

const axes = (p: Panel, label: string): Array<string> => {
  const out = [`<rect x="${num(p.x0)}" y="${num(p.y0)}" width="${num(p.w)}" height="${num(p.h)}" fill="none" stroke="#888"/>`]
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    out.push(`<line x1="${num(px(p, t))}" y1="${num(p.y0 + p.h)}" x2="${num(px(p, t))}" y2="${num(p.y0 + p.h + 4)}" stroke="#888"/>`)
    out.push(`<text x="${num(px(p, t))}" y="${num(p.y0 + p.h + 16)}" text-anchor="middle">${t}</text>`)
  }
  for (const t of ticks(p.low, p.high)) {
    out.push(`<line x1="${num(p.x0 - 4)}" y1="${num(py(p, t))}" x2="${num(p.x0 + p.w)}" y2="${num(py(p, t))}" stroke="#eee"/>`)
    out.push(`<text x="${num(p.x0 - 6)}" y="${num(py(p, t) + 4)}" text-anchor="end">${num(t)}</text>`)
  }
  out.push(`<text x="${num(p.x0 + p.w / 2)}" y="${num(p.y0 + p.h + 30)}" text-anchor="middle">λ</text>`)
  out.push(`<text x="${num(p.x0 + 4)}" y="${num(p.y0 - 6)}">${escapeXml(label)}</text>`)
  return out
}

const line = (p: Panel, points: ReadonlyArray<Point>, value: (pt: Point) => number, color: string): Array<string> => {
  const pts = points.filter((pt) => Number.isFinite(value(pt)))
  const path = pts.map((pt) => `${num(px(p, pt.lambda))},${num(py(p, value(pt)))}`).join(" ")
  return [
    `<polyline fill="none" stroke="${color}" stroke-width="2" points="${path}"/>`,
    ...pts.map((pt) => `<circle cx="${num(px(p, pt.lambda))}" cy="${num(py(p, value(pt)))}" r="2.5" fill="${color}"/>`)
  ]
}

/** SVG text plotting loss and accuracy along each curve's λ. */
export const interpolationSvg = (curves: ReadonlyArray<Curve>, options: PlotOptions = {}): string => {
  const width = options.width ?? 720
  const height = options.height ?? 320
  const w = (width - 2 * (MARGIN.left + MARGIN.right)) / 2
  const all = curves.flatMap((c) => c.points)
  const loss = panelOf(MARGIN.left, w, height, all.map((p) => p.loss))
  const acc = panelOf(2 * MARGIN.left + MARGIN.right + w, w, height, all.map((p) => p.accuracy), [0, 1])
  const body: Array<string> = [...axes(loss, "loss"), ...axes(acc, "accuracy")]
  curves.forEach((curve, i) => {
    const color = COLORS[i % COLORS.length]!
    body.push(...line(loss, curve.points, (p) => p.loss, color), ...line(acc, curve.points, (p) => p.accuracy, color))
    const lx = MARGIN.left + i * 160
    body.push(`<rect x="${lx}" y="28" width="10" height="10" fill="${color}"/>`, `<text x="${lx + 14}" y="37">${escapeXml(curve.label)}</text>`)
  })
  const title = options.title === undefined ? [] : [`<text x="${num(width / 2)}" y="18" text-anchor="middle" font-weight="bold">${escapeXml(options.title)}</text>`]
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...title,
    ...body,
    `</svg>`,
    ""
  ].join("\n")
}
