// Crashed runs and reused stages in the dashboard and the report, from hand-written run
// directories: a `running` manifest whose owner was SIGKILLed is listed and shown as `crashed`
// (not live; its running stage reads interrupted), one whose owner is this process stays live;
// a stage from the results store has a `cached` badge, one with an earlier stage's key `same as`.
import { Owner } from "@crucible/core"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as http from "node:http"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Report from "../../src/ui/Report.ts"
import * as RunData from "../../src/ui/RunData.ts"
import * as Server from "../../src/ui/Server.ts"
import { crucible } from "../e2e/cli.ts"
import { deadOwner } from "../store/children.ts"
import { tmp } from "./fixtures.ts"

let dir: string
let runsDir: string
let server: Server.UiServer

const get = (url: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    http.get(url, (res) => {
      let body = ""
      res.on("data", (c: Buffer) => (body += c.toString()))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
    }).on("error", reject)
  })

const writeRun = (runId: string, owner: Owner.Owner | undefined, startedAt: string) => {
  const runDir = path.join(runsDir, runId)
  fs.mkdirSync(runDir, { recursive: true })
  const manifest = {
    crucible: { manifestVersion: 1 },
    runId,
    status: "running",
    ...(owner === undefined ? {} : { owner }),
    startedAt,
    pipeline: {
      name: "reuse",
      ir: { stages: [{ id: "fit", uses: "train" }, { id: "fit2", uses: "train" }, { id: "score", uses: "evaluate", with: { model: "fit" } }] },
      inputPorts: { train: [], evaluate: ["model"] }
    },
    tools: {},
    stages: [
      { id: "fit", kind: "train", version: 1, key: "k1", params: {}, status: "succeeded", durationMs: 3, cached: true },
      { id: "fit2", kind: "train", version: 1, key: "k1", params: {}, status: "succeeded", durationMs: 0, sameAs: "fit" },
      { id: "score", kind: "evaluate", version: 1, key: "k2", params: {}, status: "running" }
    ],
    inputs: [],
    outputs: []
  }
  fs.writeFileSync(path.join(runDir, "manifest.json"), JSON.stringify(manifest))
  fs.writeFileSync(path.join(runDir, "events.jsonl"), "")
  return runDir
}

beforeAll(async () => {
  dir = tmp("crashed")
  runsDir = path.join(dir, "runs")
  writeRun("killed", await deadOwner(), "2026-01-02T00:00:00.000Z")
  writeRun("alive", Owner.current(), "2026-01-03T00:00:00.000Z")
  writeRun("older", undefined, "2026-01-01T00:00:00.000Z")
  server = await Effect.runPromise(Server.listen({ runsDir, port: 0, pollMs: 100 }))
})
afterAll(async () => {
  await Effect.runPromise(server.close)
  fs.rmSync(dir, { recursive: true, force: true })
})

describe("a crashed run", () => {
  it("is listed as crashed in the run list's JSON and HTML; a live owner's run and an older run without owner stay running", async () => {
    const api = JSON.parse((await get(`${server.url}api/runs`)).body) as { runs: Array<{ runId: string; status: string }> }
    expect(api.runs.map((r) => [r.runId, r.status])).toEqual([["alive", "running"], ["killed", "crashed"], ["older", "running"]])
    const page = (await get(server.url)).body
    expect(page).toMatch(/<tr data-run="killed">.*?<span class="badge" data-status="crashed">crashed<\/span>/)
    expect(page).toMatch(/<tr data-run="alive">.*?<span class="badge" data-status="running">running<\/span>/)
  })

  it("shows crashed on its page, which is not live, and its running stage as interrupted", async () => {
    const view = JSON.parse((await get(`${server.url}api/runs/killed`)).body) as { status: string; stages: Array<{ id: string; state: string }> }
    expect(view.status).toBe("crashed")
    expect(view.stages.find((s) => s.id === "score")?.state).toBe("interrupted")
    const page = (await get(`${server.url}runs/killed`)).body
    expect(page).toContain(`<span class="badge" id="run-status" data-status="crashed">crashed</span>`)
    expect(page).toContain(`<span id="live-note" class="note"></span>`)
    expect(page).toContain(`"live":false`)
    const live = (await get(`${server.url}runs/alive`)).body
    expect(live).toContain(`<span id="live-note" class="note">live</span>`)
  })

  it("is crashed in `crucible runs` (the CLI's list of runs)", () => {
    const listed = crucible(["runs", runsDir, "--json"])
    expect(listed.code).toBe(0)
    expect((JSON.parse(listed.stdout) as Array<{ runId: string; status: string }>).map((r) => [r.runId, r.status])).toEqual([["alive", "running"], ["killed", "crashed"], ["older", "running"]])
    const table = crucible(["runs", runsDir])
    expect(table.stdout).toMatch(/\nkilled +reuse +crashed +2026-01-02 00:00:00/)
    expect(crucible(["runs", path.join(dir, "none")]).stdout).toBe(`no runs in ${path.join(dir, "none")}\n`)
  })

  it("is crashed in report.html too", async () => {
    const file = await Effect.runPromise(Report.write(path.join(runsDir, "killed")))
    expect(fs.readFileSync(file, "utf8")).toContain(`data-status="crashed">crashed</span>`)
  })
})

describe("reused stages", () => {
  it("carry a cached badge and 'same as' on their cards and DAG nodes, in the page and the report", async () => {
    const view = await Effect.runPromise(RunData.readRun(runsDir, "killed"))
    expect(view.stages.map((s) => [s.id, s.cached, s.sameAs])).toEqual([["fit", true, undefined], ["fit2", undefined, "fit"], ["score", undefined, undefined]])
    for (const html of [(await get(`${server.url}runs/killed`)).body, Report.render(view, path.join(runsDir, "killed"))]) {
      expect(html).toContain(`<span class="reuse" data-cached="true"><span class="badge" data-reuse="cached">cached</span></span>`)
      expect(html).toContain(`<span class="reuse" data-same-as="fit">same as <a href="#stage-fit">fit</a></span>`)
      expect(html).toMatch(/<g class="node" data-stage="fit" data-state="succeeded" data-cached="true"[^>]*>.*?<title>fit \(train\): succeeded \(cached\)<\/title>.*?<text class="reuse"[^>]*>cached<\/text>/)
      expect(html).toMatch(/<g class="node" data-stage="fit2"[^>]*>.*?<text class="reuse"[^>]*>= fit<\/text>/)
    }
  })
})
