// The dashboard and report.html in a real browser (Debian chromium via playwright-core).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import type { Page } from "playwright-core"
import * as fs from "node:fs"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { launch, missingChromium, screenshot } from "./browser.ts"
import { fusionRun, fusionStages, slowPipeline, startWithUrl, stop, tmp } from "./fixtures.ts"

let dir: string
let run: Awaited<ReturnType<typeof fusionRun>>
let ui: Awaited<ReturnType<typeof startWithUrl>>
let browser: Awaited<ReturnType<typeof launch>>

interface JsonSpan { name: string; startTimeUnixNano: string; attributes: Array<{ key: string; value: { stringValue?: string } }> }

/** The stage spans of trace.json, read here independently of the dashboard's code. */
const stageSpans = (runDir: string): Array<{ stage: string; start: bigint }> => {
  const trace = JSON.parse(fs.readFileSync(path.join(runDir, "trace.json"), "utf8"))
  const spans: Array<JsonSpan> = trace.resourceSpans.flatMap((r: { scopeSpans: Array<{ spans: Array<JsonSpan> }> }) => r.scopeSpans.flatMap((s) => s.spans))
  return spans.filter((s) => s.name.startsWith("stage ")).map((s) => ({ stage: s.attributes.find((a) => a.key === "crucible.stage.id")!.value.stringValue!, start: BigInt(s.startTimeUnixNano) }))
}

const manifestStates = (runDir: string): Record<string, string> =>
  Object.fromEntries(JSON.parse(fs.readFileSync(path.join(runDir, "manifest.json"), "utf8")).stages.map((s: { id: string; status: string }) => [s.id, s.status]))

/** Records console errors and uncaught exceptions of a page. */
const watchErrors = (page: Page): Array<string> => {
  const errors: Array<string> = []
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()) })
  page.on("pageerror", (e) => errors.push(e.message))
  return errors
}

/** Checks the DAG and the timeline of a finished fusion run on `page`. */
const expectDagAndTimeline = async (page: Page, runDir: string) => {
  const states = await page.$$eval("svg.dag g.node", (nodes) => Object.fromEntries(nodes.map((n) => [n.getAttribute("data-stage"), n.getAttribute("data-state")])))
  expect(states).toEqual(manifestStates(runDir))
  for (const id of fusionStages) expect(await page.locator(`svg.dag g.node[data-stage="${id}"]`).isVisible()).toBe(true)
  const spans = stageSpans(runDir)
  expect(await page.locator("svg.timeline g.row-stage").count()).toBe(spans.length)
  const x = new Map<string, number>()
  for (const s of spans) {
    const box = await page.locator(`svg.timeline g.row-stage[data-stage="${s.stage}"] rect.bar`).boundingBox()
    expect(box, s.stage).not.toBeNull()
    expect(box!.width).toBeGreaterThan(0)
    x.set(s.stage, box!.x)
  }
  // Bars follow the spans' start times (1 ms apart or more, to stay clear of sub-pixel rounding).
  for (const a of spans) for (const b of spans) if (b.start - a.start > 1_000_000n) expect(x.get(a.stage)!, `${a.stage} before ${b.stage}`).toBeLessThanOrEqual(x.get(b.stage)!)
}

// Without chromium every test here is skipped with the reason, also printed once (BrowserSkip.test.ts).
const missing = missingChromium()
if (missing !== undefined) console.warn(missing)
beforeEach((context) => {
  if (missing !== undefined) context.skip(missing)
})

beforeAll(async () => {
  if (missing !== undefined) return
  dir = tmp("browser")
  browser = await launch()
  run = await fusionRun(dir)
  ui = await startWithUrl(["ui", run.runsDir, "--port", "0"])
}, 120_000)
afterAll(async () => {
  if (ui !== undefined) expect(await stop(ui.child)).toBe(130)
  await browser?.close()
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
})

describe("crucible ui in a browser", () => {
  it("lists the run, and its page shows the DAG with every stage, the timeline of its spans, metrics, charts and errors", async () => {
    expect(run.code).toBe(1)
    expect(ui.output()).toContain(`crucible ui: serving ${run.runsDir} at ${ui.url}`)
    const page = await browser.context.newPage()
    const errors = watchErrors(page)
    await page.goto(ui.url)
    const row = page.locator(`tr[data-run="fusion"]`)
    await expect.poll(() => row.textContent()).toContain("fusion")
    expect(await row.locator(".badge").textContent()).toBe("failed")
    await screenshot(page, "runs-list")

    await row.locator("a").click()
    await page.waitForURL(`${ui.url}runs/fusion`)
    expect(await page.locator("h1").textContent()).toBe("fusion")
    await expectDagAndTimeline(page, run.runDir)
    expect(await page.locator("#timeline-source").getAttribute("data-source")).toBe("trace")
    // Metrics: the interpolation's charts with the barrier, the training curves from span events, the stage's plot.
    await expect.poll(() => page.locator(`#stage-curve svg.chart[data-chart="curve:loss"] .annotation-barrier`).count()).toBe(1)
    expect(await page.locator(`#stage-fit_a svg.chart[data-chart="train.epoch:loss"] polyline`).count()).toBe(2)
    expect(await page.locator(`#stage-score table.metrics`).textContent()).toContain("accuracy")
    expect(await page.locator(`#stage-curve img[alt="curve.svg"]`).evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0)).toBe(true)
    // The failed stage's error, and the stages it blocked.
    expect(await page.locator("#stage-missing pre.error").textContent()).toContain("nowhere.safetensors")
    expect(await page.locator("#stage-bad_out").textContent()).toContain("skipped because missing failed")
    await page.locator(`svg.dag g.node[data-stage="missing"] a`).click()
    await expect.poll(() => page.locator("article#stage-missing").getAttribute("class")).toContain("selected")
    await screenshot(page, "run-page")
    expect(errors).toEqual([])
    await page.close()
  })

  it("follows a run live: a stage goes from running to succeeded on the page without a reload (SSE)", async () => {
    const liveDir = tmp("live")
    try {
      const pipeline = await slowPipeline(liveDir)
      const runsDir = path.join(liveDir, "runs")
      const live = await startWithUrl(["run", pipeline, "--runs-dir", runsDir, "--run-id", "live", "--concurrency", "1", "--ui"], /http:\/\/127\.0\.0\.1:\d+\/runs\/live/)
      const exited = new Promise<number | null>((resolve) => live.child.on("exit", resolve))
      const page = await browser.context.newPage()
      const errors = watchErrors(page)
      await page.goto(live.url)
      expect(await page.locator("body").getAttribute("data-mode")).toBe("live")
      // Record every state and progress-bar width the last stage shows, from now on.
      await page.evaluate(() => {
        const node = document.querySelector(`svg.dag g.node[data-stage="last"]`)!
        const bar = node.querySelector("rect.bar")!
        const w = window as unknown as { seen: Array<string>; widths: Array<number>; marker: number }
        w.marker = 1
        w.seen = [node.getAttribute("data-state")!]
        w.widths = []
        new MutationObserver(() => {
          const state = node.getAttribute("data-state")!
          if (w.seen.at(-1) !== state) w.seen.push(state)
          if (state === "running") w.widths.push(Number(bar.getAttribute("width")))
        }).observe(node, { attributes: true, subtree: true })
      })
      await page.locator(`svg.dag g.node[data-state="running"]`).first().waitFor({ timeout: 30_000 })
      await screenshot(page, "live-running")
      const first = await page.evaluate(() => (window as unknown as { seen: Array<string> }).seen[0])
      expect(["pending", "running"]).toContain(first)
      await page.locator(`svg.dag g.node[data-stage="last"][data-state="succeeded"]`).waitFor({ timeout: 60_000 })
      const seen = await page.evaluate(() => (window as unknown as { seen: Array<string> }).seen)
      expect(seen.slice(seen.indexOf("running"))).toEqual(["running", "succeeded"])
      const widths = await page.evaluate(() => (window as unknown as { widths: Array<number> }).widths)
      const full = Number(await page.locator(`svg.dag g.node[data-stage="last"] rect.bar`).getAttribute("data-width"))
      expect(widths.some((w) => w > 0 && w < full)).toBe(true)
      // Same document all along: no reload, no navigation.
      expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(1)
      expect(await page.evaluate(() => performance.getEntriesByType("navigation").length)).toBe(1)
      await expect.poll(() => page.locator("body").getAttribute("data-live"), { timeout: 30_000 }).toBe("ended")
      await expect.poll(() => page.locator("#run-status").textContent()).toBe("succeeded")
      expect(await page.locator("article.stage[data-state='succeeded']").count()).toBe(5)
      await screenshot(page, "live-run")
      expect(await exited).toBe(0)
      // --ui stops serving when the run ends.
      await expect(fetch(live.url)).rejects.toThrow()
      expect(errors.filter((e) => !e.includes("ERR_CONNECTION_REFUSED"))).toEqual([])
      await page.close()
    } finally {
      fs.rmSync(liveDir, { recursive: true, force: true })
    }
  })

  it("opens report.html from disk with the network off: DAG, timeline, charts and script all work", async () => {
    const file = path.join(run.runDir, "report.html")
    const page = await browser.context.newPage()
    const errors = watchErrors(page)
    const requests: Array<string> = []
    page.on("request", (r) => requests.push(r.url()))
    await browser.context.setOffline(true)
    try {
      await page.route("**/*", (route) => (/^(file|data):/.test(route.request().url()) ? route.continue() : route.abort()))
      await page.goto(pathToFileURL(file).href)
      expect(await page.locator("body").getAttribute("data-mode")).toBe("report")
      await expectDagAndTimeline(page, run.runDir)
      expect(await page.locator(`svg.chart[data-chart="curve:accuracy"]`).isVisible()).toBe(true)
      expect(await page.locator(`img[alt="curve.svg"]`).evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0 && img.src.startsWith("data:image/svg+xml;base64,"))).toBe(true)
      const embedded = JSON.parse((await page.locator("#run-data").textContent())!)
      expect(embedded.runId).toBe("fusion")
      expect(embedded.stages.map((s: { id: string }) => s.id)).toEqual([...fusionStages])
      await page.locator(`svg.dag g.node[data-stage="curve"] a`).click()
      await expect.poll(() => page.locator("article#stage-curve").getAttribute("class")).toContain("selected")
      await screenshot(page, "report")
      expect(requests.filter((u) => !/^(file|data):/.test(u))).toEqual([])
      expect(errors).toEqual([])
    } finally {
      await browser.context.setOffline(false)
      await page.close()
    }
  })
})
