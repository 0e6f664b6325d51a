// lm/evaluate results on the run page, in a real browser (Debian chromium via playwright-core): the
// group table and perplexity bars on each card, and the models × groups comparison.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import * as Report from "../../src/ui/Report.ts"
import * as RunView from "../../src/ui/RunView.ts"
import { launch, missingChromium, screenshot } from "./browser.ts"
import { tmp } from "./fixtures.ts"

// lm/evaluate's output shape; perplexity = exp(loss) in every entry, as the stage computes it.
const evaluation = (perplexity: Record<string, number>) => {
  const groups = Object.fromEntries(Object.entries(perplexity).map(([g, p]) => [g, { tokens: 2048, loss: Math.log(p), perplexity: p, accuracy: 1 / Math.log(p) / 2 }]))
  const loss = Object.values(groups).reduce((a, g) => a + g.loss, 0) / Object.keys(groups).length
  return { dataset: "brown/test", tokens: 2048 * Object.keys(groups).length, loss, perplexity: Math.exp(loss), accuracy: 1 / loss / 2, groups }
}

const models: Record<string, Record<string, number>> = {
  base: { press: 310, fiction: 280, learned: 350, lore: 330 },
  press: { press: 190, fiction: 300, learned: 360, lore: 340 },
  fiction: { press: 330, fiction: 170, learned: 380, lore: 335 },
  ties: { press: 230, fiction: 210, learned: 300, lore: 290 }
}

let dir: string
let browser: Awaited<ReturnType<typeof launch>>

const missing = missingChromium()
beforeEach((context) => {
  if (missing !== undefined) context.skip(missing)
})
beforeAll(async () => {
  if (missing !== undefined) return
  dir = tmp("lm")
  browser = await launch()
}, 60_000)
afterAll(async () => {
  await browser?.close()
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
})

describe("lm/evaluate on the run page in a browser", () => {
  it("draws each evaluation's groups and the models × groups comparison, the best of each group marked", async () => {
    const ids = Object.keys(models)
    const view = RunView.make({
      manifest: {
        runId: "lm", status: "succeeded", startedAt: "2026-12-01T08:00:00.000Z", pipeline: { name: "lm-merge" },
        stages: ids.map((m) => ({ id: `eval_${m}`, kind: "lm/evaluate", status: "succeeded", durationMs: 1200, params: { model: m, data: "brown", split: "test" }, output: { type: "metrics", values: evaluation(models[m]!) } }))
      },
      events: [], eventCount: 0, spans: [], spansFrom: "trace"
    })
    const file = path.join(dir, "report.html")
    fs.writeFileSync(file, Report.render(view, dir))
    const page = await browser.context.newPage()
    const errors: Array<string> = []
    page.on("pageerror", (e) => errors.push(e.message))
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()) })
    await page.goto(pathToFileURL(file).href)

    // Comparison: 4 models × 4 groups, every bar drawn with a height proportional to its perplexity.
    const compare = page.locator(`#lm-section svg.chart[data-chart="compare:brown/test"]`)
    expect(await compare.isVisible()).toBe(true)
    const drawn = await compare.locator("rect.bar").evaluateAll((rects) => rects.map((r) => ({ series: r.getAttribute("data-series")!, group: r.getAttribute("data-category")!, value: Number(r.getAttribute("data-value")), height: r.getBoundingClientRect().height })))
    expect(drawn).toHaveLength(16)
    const scale = drawn[0]!.height / drawn[0]!.value
    // Screen pixels are rounded to 1/100 in the SVG: within 0.05 px of proportional.
    for (const b of drawn) expect(Math.abs(b.height - b.value * scale)).toBeLessThan(0.05)
    const best = await page.locator("#lm-section table.lm-compare td.best").evaluateAll((cells) => cells.map((c) => `${c.getAttribute("data-group")}:${c.closest("tr")!.getAttribute("data-stage")}`))
    expect(best.sort()).toEqual(["all:eval_ties", "fiction:eval_fiction", "learned:eval_ties", "lore:eval_ties", "press:eval_press"])
    expect(await page.locator("#lm-section td.best").first().evaluate((c) => getComputedStyle(c).fontWeight)).toBe("700")

    // Each card: the group table and the perplexity bars with their values written above them.
    for (const m of ids) {
      const card = page.locator(`#stage-eval_${m}`)
      expect(await card.locator("table.lm-groups tbody tr").count()).toBe(5)
      expect(await card.locator(`svg.chart[data-chart="groups:perplexity"] text.bar-value`).allTextContents()).toEqual(Object.values(models[m]!).map(String))
    }
    // Clicking a model in the comparison selects its stage's card.
    await page.locator(`#lm-section a[href="#stage-eval_ties"]`).click()
    await expect.poll(() => page.evaluate(() => location.hash)).toBe("#stage-eval_ties")
    await screenshot(page, "lm-evaluate")
    expect(errors).toEqual([])
    await page.close()
  })
})
