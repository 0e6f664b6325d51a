import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { Reporter } from "../../src/Events.ts"
import * as Runner from "../../src/Runner.ts"
import * as RunData from "../../src/ui/RunData.ts"
import { startCrucible } from "../e2e/cli.ts"
import { fusionRun, fusionStages, slowPipeline, tmp } from "./fixtures.ts"

let dir: string
let run: Awaited<ReturnType<typeof fusionRun>>

beforeAll(async () => {
  dir = tmp("report")
  run = await fusionRun(dir)
})
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const scripts = (html: string) => [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]!)

describe("report.html", () => {
  it("is written at the end of every run, self-contained: no external file or URL, network forbidden by its policy", () => {
    const html = fs.readFileSync(path.join(run.runDir, "report.html"), "utf8")
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">`)
    // Every src/href is an in-page anchor or a data URI (xmlns attributes are names, not fetches).
    const refs = [...html.matchAll(/\s(?:src|href)="([^"]*)"/g)].map((m) => m[1]!)
    expect(refs.length).toBeGreaterThan(fusionStages.length)
    expect(refs.filter((r) => !r.startsWith("#") && !r.startsWith("data:"))).toEqual([])
    // Nothing loaded by CSS or a script tag either (url(#…) is an in-document reference).
    expect(html.match(/<link rel="stylesheet"|<script src=|@import|url\((?!#)/g)).toBeNull()
    for (const id of fusionStages) expect(html).toContain(`<g class="node" data-stage="${id}"`)
    expect(html).toContain(`<img src="data:image/svg+xml;base64,${fs.readFileSync(path.join(run.runDir, "curve.svg")).toString("base64")}"`)
  })

  it("embeds the run's view model, the same one the dashboard serves", async () => {
    const html = fs.readFileSync(path.join(run.runDir, "report.html"), "utf8")
    const embedded = JSON.parse(/<script type="application\/json" id="run-data">([\s\S]*?)<\/script>/.exec(html)![1]!)
    const view = await Effect.runPromise(RunData.readRunDir(run.runDir))
    // Written after run-finished, so nothing about the run changed since.
    expect(embedded).toEqual(JSON.parse(JSON.stringify(view)))
  })

  it("has a page script that parses, also when the report is rendered by the programmatic API in this process", async () => {
    const result = await Effect.runPromise(Runner.run(run.pipeline, { runsDir: path.join(dir, "api-runs"), runId: "api" }).pipe(Effect.provideService(Reporter, Reporter.silent)))
    expect(result.status).toBe("failed")
    for (const file of [path.join(result.runDir, "report.html"), path.join(run.runDir, "report.html")]) {
      const [script, ...rest] = scripts(fs.readFileSync(file, "utf8"))
      expect(rest).toEqual([])
      expect(() => new Function(script!)).not.toThrow()
      expect(script).toMatch(/"live":false/)
    }
  })

  it("is written for an interrupted run too, from its events", async () => {
    const slowDir = tmp("report-sigint")
    try {
      const pipeline = await slowPipeline(slowDir)
      const child = startCrucible(["run", pipeline, "--runs-dir", path.join(slowDir, "runs"), "--run-id", "r", "--json", "--concurrency", "1"])
      let stdout = ""
      child.stdout.on("data", (c: Buffer) => {
        stdout += c.toString()
        if (/"type":"stage-progress".*"stage":"as_f64"/.test(stdout) && child.exitCode === null && !child.killed) child.kill("SIGINT")
      })
      expect(await new Promise((resolve) => child.on("exit", resolve))).toBe(130)
      const runDir = path.join(slowDir, "runs", "r")
      const html = fs.readFileSync(path.join(runDir, "report.html"), "utf8")
      expect(html).toContain(`id="run-status" data-status="interrupted"`)
      expect(html).toContain(`<g class="node" data-stage="as_bf16" data-state="succeeded"`)
      expect(html).toContain(`<g class="node" data-stage="as_f64" data-state="interrupted"`)
      expect(html).toContain(`<g class="node" data-stage="last" data-state="interrupted"`)
      expect(html).toContain(`data-source="events"`)
    } finally {
      fs.rmSync(slowDir, { recursive: true, force: true })
    }
  })
})
