import { describe, expect, it } from "vitest"
import * as Charts from "../../src/ui/Charts.ts"
import * as LmEvaluation from "../../src/ui/LmEvaluation.ts"
import * as MetricsView from "../../src/ui/MetricsView.ts"
import * as Page from "../../src/ui/Page.ts"
import * as RunView from "../../src/ui/RunView.ts"

// lm/evaluate's output shape (ctx: `{ dataset, tokens, loss, perplexity, accuracy, groups: { g: {…} } }`);
// perplexity = exp(loss) in every entry, as the stage computes it.
const evaluation = (loss: Record<string, number>, accuracy = 0.3) => {
  const groups = Object.fromEntries(Object.entries(loss).map(([g, l]) => [g, { tokens: 1024, loss: l, perplexity: Math.exp(l), accuracy }]))
  const mean = Object.values(loss).reduce((a, b) => a + b, 0) / Object.keys(loss).length
  return { dataset: "brown/test", tokens: 1024 * Object.keys(loss).length, loss: mean, perplexity: Math.exp(mean), accuracy, groups }
}

const bars = (svg: string) => [...svg.matchAll(/<rect class="bar" data-category="([^"]*)" data-series="([^"]*)" data-value="([^"]*)"/g)].map((m) => [m[1], m[2], Number(m[3])])

describe("bar charts", () => {
  it("draws each bar from the zero line up to its value, linearly, side by side per category; a missing value has no bar", () => {
    const chart = Charts.barLayout({ id: "b", title: "t", xLabel: "group", yLabel: "ppl", categories: ["news", "fiction"], series: [{ name: "base", values: [200, 300] }, { name: "ties", values: [150, null] }], width: 440, height: 260 })
    // Domain [0, 300] (ticks every 50); the legend's one row pushes the plot down to y = 46.
    expect([chart.y.min, chart.y.max]).toEqual([0, 300])
    expect(chart.plot).toEqual({ left: 56, top: 46, width: 370, height: 176 })
    const zero = chart.plot.top + chart.plot.height
    const slot = 370 / 2
    const width = (slot * 0.8) / 2
    const expected = [
      { category: "news", series: "base", value: 200, x: 56 + slot * 0.1, height: (200 / 300) * 176 },
      { category: "news", series: "ties", value: 150, x: 56 + slot * 0.1 + width, height: (150 / 300) * 176 },
      { category: "fiction", series: "base", value: 300, x: 56 + slot + slot * 0.1, height: 176 }
    ]
    expect(chart.bars.map((b) => ({ category: b.category, series: b.series, value: b.value, x: b.x, height: b.height }))).toEqual(expected)
    for (const b of chart.bars) {
      expect(b.width).toBeCloseTo(width, 12)
      expect(b.y + b.height).toBeCloseTo(zero, 12)
    }
    expect(chart.legend.map((l) => l.name)).toEqual(["base", "ties"])
    expect(bars(Charts.renderBars(chart))).toEqual([["news", "base", 200], ["news", "ties", 150], ["fiction", "base", 300]])
  })

  it("is as wide as its labels need, and wraps a long legend into rows above the plot", () => {
    const series = Array.from({ length: 9 }, (_, i) => ({ name: `model-number-${i}`, values: [1, 2, 3, 4] }))
    const chart = Charts.barLayout({ id: "b", title: "t", xLabel: "", yLabel: "", categories: ["press", "fiction", "science_fiction", "learned"], series })
    // Each slot fits 9 bars of 14 px + 16, and "science_fiction" (15 characters × 6.5 + 10).
    expect(chart.width).toBe(Math.ceil(56 + 14 + 4 * Math.max(9 * 14 + 16, 15 * 6.5 + 10)))
    const rows = new Set(chart.legend.map((l) => l.y))
    expect(rows.size).toBeGreaterThan(1)
    for (const l of chart.legend) expect(l.x + 24 + l.name.length * 6.2).toBeLessThanOrEqual(chart.plot.left + chart.plot.width + 1e-9)
    expect(chart.plot.top).toBeGreaterThan(Math.max(...chart.legend.map((l) => l.y)))
    // Ten series, ten colours.
    const ten = Charts.barLayout({ id: "b", title: "t", xLabel: "", yLabel: "", categories: ["a"], series: Array.from({ length: 10 }, (_, i) => ({ name: `m${i}`, values: [i + 1] })) })
    expect(new Set(ten.bars.map((b) => b.color)).size).toBe(10)
    // A long title widens the chart rather than being cut.
    const title = "perplexity per group (brown/test[press,fiction,learned,popular])"
    expect(Charts.barLayout({ id: "b", title, xLabel: "", yLabel: "", categories: ["a"], series: [{ name: "s", values: [1] }] }).width).toBeGreaterThanOrEqual(56 + title.length * 7)
  })
})

describe("an lm/evaluate result on its card", () => {
  it("is read only from its shape: groups whose every entry has a perplexity", () => {
    expect(LmEvaluation.read(evaluation({ news: 5, fiction: 5.5 }))?.groups.map((g) => g.group)).toEqual(["news", "fiction"])
    expect(LmEvaluation.read({ groups: {} })).toBeUndefined()
    expect(LmEvaluation.read({ groups: { a: { perplexity: 3 }, b: { loss: 1 } } })).toBeUndefined()
    expect(LmEvaluation.read({ accuracy: 0.9 })).toBeUndefined()
  })

  it("renders a table of group × perplexity, accuracy, tokens (the whole set last) and a bar chart of perplexity per group", () => {
    const values = evaluation({ news: Math.log(180), fiction: Math.log(240), learned: Math.log(150) }, 0.25)
    const html = MetricsView.render(values)
    // The overall figures are the group table's last row; only the data set is left for the scalar table.
    expect(html.table).toBe(`<table class="metrics"><tbody><tr><th>dataset</th><td>brown/test</td></tr></tbody></table>`)
    const [table, chart] = html.blocks
    expect(table).toContain(`<tr data-group="news"><th>news</th><td>180</td><td>25.00%</td><td>1024</td><td>5.193</td></tr>`)
    // exp(mean loss) is the geometric mean of the perplexities: ∛(180 · 240 · 150) = 186.4.
    expect(table).toContain(`<tr data-group="all" class="all"><th>all</th><td>186.4</td><td>25.00%</td><td>3072</td><td>5.228</td></tr>`)
    expect(chart).toContain(`data-chart="groups:perplexity"`)
    expect(chart).toContain("perplexity per group (brown/test)")
    expect(bars(chart!).map(([g, , v]) => [g, Math.round(v as number)])).toEqual([["news", 180], ["fiction", 240], ["learned", 150]])
    // One series: each bar's value is written above it, and there is no legend.
    expect(chart).toContain(`<text class="bar-value"`)
    expect(html.blocks).toHaveLength(2)
  })

  it("shows generated samples in full", () => {
    const continuation = " of the county court said that the election had been conducted in a manner that deserves the praise"
    const html = MetricsView.render({ samples: [{ prompt: "The jury <said>", continuation, ids: [1, 2, 3] }] })
    expect(html.blocks).toEqual([`<div class="samples" data-metrics="samples"><p class="sample"><span class="prompt">The jury &lt;said&gt;</span><span class="continuation">${continuation}</span></p></div>`])
  })
})

describe("lm/evaluate stages compared on the run page", () => {
  const stage = (id: string, model: string, values: unknown, state: RunView.StageState = "succeeded") =>
    ({ id, state, params: { model, data: "brown" }, output: { type: "metrics", values } })
  const stages = [
    stage("eval_base", "base", evaluation({ press: Math.log(300), fiction: Math.log(320) })),
    stage("eval_press", "press", evaluation({ press: Math.log(200), fiction: Math.log(330) })),
    stage("eval_ties", "ties", evaluation({ press: Math.log(210), fiction: Math.log(250) })),
    stage("eval_ties_again", "ties", evaluation({ press: Math.log(210), fiction: Math.log(250) })),
    stage("eval_failed", "linear", undefined, "failed"),
    stage("eval_other", "base", { ...evaluation({ press: 1 }), dataset: "notes/test" }),
    { id: "score", state: "succeeded" as const, params: {}, output: { type: "metrics", values: { accuracy: 0.9 } } }
  ]

  it("compares the succeeded evaluations of one data set, named after the model they evaluated (the stage when two share it)", () => {
    const found = LmEvaluation.comparisons(stages)
    // notes/test was evaluated once: nothing to compare.
    expect(found.map((c) => c.dataset)).toEqual(["brown/test"])
    expect(found[0]!.rows.map((r) => [r.stage, r.label])).toEqual([["eval_base", "base"], ["eval_press", "press"], ["eval_ties", "eval_ties"], ["eval_ties_again", "eval_ties_again"]])
  })

  it("marks the lowest perplexity of each group and overall, and draws models × groups", () => {
    const html = LmEvaluation.section(stages)
    expect(html).toMatch(/^<section id="lm-section"><h2>Language models compared<\/h2>/)
    const best = [...html.matchAll(/<tr data-stage="([^"]+)">(.*?)<\/tr>/g)].flatMap((m) => [...m[2]!.matchAll(/<td data-group="([^"]+)" class="best">/g)].map((b) => `${b[1]}:${m[1]}`))
    // press: press 200; fiction: ties 250 (twice); all: exp(mean loss) is lowest for ties (√(210·250) < √(200·330)).
    expect(best).toEqual(["press:eval_press", "fiction:eval_ties", "all:eval_ties", "fiction:eval_ties_again", "all:eval_ties_again"])
    const drawn = bars(html)
    expect(drawn).toHaveLength(8)
    expect(drawn.filter(([g]) => g === "press").map(([, s, v]) => [s, Math.round(v as number)])).toEqual([["base", 300], ["press", 200], ["eval_ties", 210], ["eval_ties_again", 210]])
    expect(LmEvaluation.section(stages.slice(0, 1))).toBe(`<section id="lm-section"></section>`)
  })

  it("sits on the run page between the timeline and the stages", () => {
    const view = RunView.make({
      manifest: {
        runId: "r", status: "succeeded", startedAt: "2026-12-01T08:00:00.000Z", pipeline: { name: "lm" },
        stages: stages.slice(0, 3).map((s) => ({ id: s.id, kind: "lm/evaluate", status: "succeeded", params: s.params, output: s.output }))
      },
      events: [], eventCount: 0, spans: [], spansFrom: "trace"
    })
    const page = Page.runPage(view, { mode: "report", artifact: () => "" })
    const at = (s: string) => page.indexOf(s)
    expect(at(`<section id="timeline-section">`)).toBeLessThan(at(`<section id="lm-section">`))
    expect(at(`<section id="lm-section">`)).toBeLessThan(at(`<section id="stages-section">`))
    expect(page).toContain(`<table class="lm-compare" data-dataset="brown/test">`)
    expect(page.match(/<table class="lm-groups">/g)).toHaveLength(3)
  })
})
