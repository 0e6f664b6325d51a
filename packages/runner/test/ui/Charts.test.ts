import { describe, expect, it } from "vitest"
import * as Charts from "../../src/ui/Charts.ts"
import * as MetricsView from "../../src/ui/MetricsView.ts"

// An interpolation path measured by evaluate/interpolation on Iris (two 4-16-3 MLPs).
const curve = [
  { lambda: 0, loss: 0.5837250726870508, accuracy: 0.7333333333333333 },
  { lambda: 0.25, loss: 0.784724631908645, accuracy: 0.6666666666666666 },
  { lambda: 0.5, loss: 0.8848531281374149, accuracy: 0.6666666666666666 },
  { lambda: 0.75, loss: 0.654985739794169, accuracy: 0.6666666666666666 },
  { lambda: 1, loss: 0.45286603688638144, accuracy: 0.7666666666666667 }
]

const circles = (svg: string) => [...svg.matchAll(/<circle cx="([-\d.]+)" cy="([-\d.]+)"/g)].map((m) => [Number(m[1]), Number(m[2])])

describe("chart scales", () => {
  it("widens a domain to round ticks", () => {
    expect(Charts.niceDomain(0.45, 0.88)).toEqual({ min: 0.4, max: 0.9, ticks: [0.4, 0.5, 0.6, 0.7, 0.8, 0.9] })
    expect(Charts.niceDomain(0, 1)).toEqual({ min: 0, max: 1, ticks: [0, 0.2, 0.4, 0.6, 0.8, 1] })
    expect(Charts.niceDomain(3, 97).ticks).toEqual([0, 20, 40, 60, 80, 100])
    expect(Charts.niceDomain(-0.3, 0.1).ticks).toEqual([-0.3, -0.2, -0.1, 0, 0.1])
    expect(Charts.niceDomain(5, 5)).toMatchObject({ min: 4.4, max: 5.6 })
    expect(Charts.niceDomain(NaN, 1)).toEqual({ min: 0, max: 1, ticks: [0, 0.5, 1] })
  })

  it("maps every point to pixels linearly inside the plot, and draws it", () => {
    const spec: Charts.ChartSpec = { id: "c", title: "t", xLabel: "x", yLabel: "y", series: [{ name: "s", points: [{ x: 1, y: 10 }, { x: 2, y: 30 }, { x: 4, y: null }, { x: 5, y: 20 }] }] }
    const chart = Charts.layout(spec)
    // 440×260 with margins left 56, right 14, top 44, bottom 40: plot 370×176 at (56, 44); x ∈ [1, 5], y ∈ [10, 30].
    expect(chart.plot).toEqual({ left: 56, top: 44, width: 370, height: 176 })
    expect([chart.x.min, chart.x.max, chart.y.min, chart.y.max]).toEqual([1, 5, 10, 30])
    const expected = [[1, 10], [2, 30], [5, 20]].map(([x, y]) => [56 + ((x! - 1) / 4) * 370, 44 + 176 - ((y! - 10) / 20) * 176])
    expect(chart.series[0]!.points.map((p) => [p.px, p.py])).toEqual(expected)
    // The missing value is left out, not drawn at zero.
    expect(circles(Charts.render(chart))).toEqual(expected.map(([x, y]) => [Math.round(x! * 100) / 100, Math.round(y! * 100) / 100]))
  })
})

describe("interpolation charts", () => {
  it("finds the barrier: the largest gap between the path and the straight line through its endpoints", () => {
    // float64 reference: max over λ of loss(λ) − ((1−λ)·loss(0) + λ·loss(1)).
    const l0 = curve[0]!.loss
    const l1 = curve[4]!.loss
    const gaps = curve.map((p) => p.loss - ((1 - p.lambda) * l0 + p.lambda * l1))
    const best = Math.max(...gaps)
    expect(Charts.gap(curve.map((p) => ({ lambda: p.lambda, value: p.loss })), 1)).toEqual({ value: best, at: curve[gaps.indexOf(best)]!.lambda })
    expect(best).toBeCloseTo(0.36655757335069883, 12)
    const a0 = curve[0]!.accuracy
    const a1 = curve[4]!.accuracy
    const accGaps = curve.map((p) => (1 - p.lambda) * a0 + p.lambda * a1 - p.accuracy)
    expect(Charts.gap(curve.map((p) => ({ lambda: p.lambda, value: p.accuracy })), -1)).toEqual({ value: Math.max(...accGaps), at: 0.75 })
  })

  it("draws loss and accuracy against λ with the endpoints' line dashed and the barrier marked where it is", () => {
    const [loss, accuracy] = Charts.interpolationCharts("curve", curve, { loss: 0.36655757335069883, lossAt: 0.5, accuracy: 0.09166666666666679, accuracyAt: 0.75 })
    expect(loss).toContain(`data-chart="curve:loss"`)
    expect(accuracy).toContain(`data-chart="curve:accuracy"`)
    expect(loss).toContain(">barrier 0.3666<")
    expect(accuracy).toContain(">barrier 0.09167<")
    // The barrier segment is vertical at λ = 0.5, from the endpoints' line to the path.
    const chart = Charts.layout({ id: "x", title: "", xLabel: "", yLabel: "", series: [{ name: "loss", points: curve.map((p) => ({ x: p.lambda, y: p.loss })) }] })
    const px = (x: number) => chart.plot.left + ((x - chart.x.min) / (chart.x.max - chart.x.min)) * chart.plot.width
    const py = (y: number) => chart.plot.top + chart.plot.height - ((y - chart.y.min) / (chart.y.max - chart.y.min)) * chart.plot.height
    const r = (v: number) => String(Math.round(v * 100) / 100)
    const line = (curve[0]!.loss + curve[4]!.loss) / 2
    expect(loss).toContain(`<line class="annotation annotation-barrier" x1="${r(px(0.5))}" y1="${r(py(line))}" x2="${r(px(0.5))}" y2="${r(py(curve[2]!.loss))}"`)
    expect(loss).toContain(`<line class="annotation annotation-reference" x1="${r(px(0))}" y1="${r(py(curve[0]!.loss))}" x2="${r(px(1))}" y2="${r(py(curve[4]!.loss))}"`)
    expect(circles(loss!)).toHaveLength(5)
  })

  it("takes a barrier given as one number, and finds where it is itself", () => {
    const [loss] = Charts.interpolationCharts("p", curve.map(({ lambda, loss }) => ({ lambda, loss })), 0.3666)
    expect(loss).toContain(">barrier 0.3666<")
    expect(Charts.interpolationCharts("p", curve.map(({ lambda, loss }) => ({ lambda, loss })))).toHaveLength(1)
  })
})

describe("training charts", () => {
  it("draws loss and accuracy per epoch, validation dashed when present", () => {
    const epochs = [1, 2, 3].map((epoch) => ({ epoch, loss: 1 / epoch, accuracy: 0.5 + epoch / 10, valLoss: 1.1 / epoch, valAccuracy: 0.45 + epoch / 10 }))
    const [loss, accuracy] = Charts.epochCharts("fit", epochs)
    expect(loss!.match(/<polyline/g)).toHaveLength(2)
    expect(loss).toContain(`data-series="validation loss"`)
    expect(loss!.match(/<polyline[^>]*stroke-dasharray/g)).toHaveLength(1)
    expect(accuracy).toContain(`data-chart="fit:accuracy"`)
    const trainOnly = Charts.epochCharts("fit", epochs.map(({ epoch, loss }) => ({ epoch, loss })))
    expect(trainOnly).toHaveLength(1)
    expect(trainOnly[0]!.match(/<polyline/g)).toHaveLength(1)
  })
})

describe("metrics as HTML", () => {
  it("puts scalars in one table, charts curves and epochs, and charts other row lists by scale", () => {
    const html = MetricsView.render({
      dataset: "iris/test",
      accuracy: 0.7333333333333333,
      curve,
      barrier: { loss: 0.36655757335069883, lossAt: 0.5 },
      history: [{ epoch: 1, loss: 1.2 }, { epoch: 2, loss: 0.9 }],
      perClass: [{ class: 0, name: "setosa", count: 10, accuracy: 1 }, { class: 1, name: "versicolor", count: 10, accuracy: 0.2 }, { class: 2, name: "virginica", count: 10, accuracy: 1 }],
      "<b>": "<i>"
    })
    expect(html.table).toContain("<th>dataset</th><td>iris/test</td>")
    expect(html.table).toContain("<th>accuracy</th><td>0.7333</td>")
    expect(html.table).toContain("<th>barrier.loss</th><td>0.3666</td>")
    expect(html.table).toContain("<th>&lt;b&gt;</th><td>&lt;i&gt;</td>")
    const charts = html.blocks.flatMap((b) => [...b.matchAll(/data-chart="([^"]+)"/g)].map((m) => m[1]))
    // Counts (≈10) and accuracies (≤ 1) are too far apart in scale to share an axis.
    expect(charts).toEqual(["curve:loss", "curve:accuracy", "history:loss", "perClass:count", "perClass:accuracy"])
    expect(html.blocks.filter((b) => b.startsWith(`<details class="rows">`))).toHaveLength(3)
  })

  it("groups fields by magnitude", () => {
    const rows = [{ a: 1, b: 0.5, c: 900, d: 300 }]
    expect(MetricsView.byMagnitude(rows, ["a", "b", "c", "d"])).toEqual([["c", "d"], ["a", "b"]])
  })
})
