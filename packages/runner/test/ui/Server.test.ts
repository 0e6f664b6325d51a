import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as http from "node:http"
import * as path from "node:path"
import * as Server from "../../src/ui/Server.ts"
import { startCrucible } from "../e2e/cli.ts"
import { fusionRun, fusionStages, slowPipeline, tmp } from "./fixtures.ts"

let dir: string
let run: Awaited<ReturnType<typeof fusionRun>>
let server: Server.UiServer

/** A raw GET (fetch cannot set Host), collecting the body. */
const get = (url: string, headers: http.OutgoingHttpHeaders = {}, method = "GET") =>
  new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      let body = ""
      res.on("data", (c: Buffer) => (body += c.toString()))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on("error", reject)
    req.end()
  })

interface Sse { readonly id?: string; readonly event?: string; readonly data: string; readonly at: number }

/** Reads an SSE stream to its end, parsing each message. */
const readSse = (url: string, headers: http.OutgoingHttpHeaders = {}) =>
  new Promise<{ status: number; type: string; messages: Array<Sse> }>((resolve, reject) => {
    http.get(url, { headers }, (res) => {
      let buffer = ""
      const messages: Array<Sse> = []
      res.on("data", (c: Buffer) => {
        buffer += c.toString()
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const fields = Object.fromEntries(block.split("\n").filter((l) => !l.startsWith(":") && l.includes(":")).map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trimStart()]))
          if (fields.data !== undefined) messages.push({ ...fields, data: fields.data, at: Date.now() } as Sse)
        }
      })
      res.on("end", () => resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), messages }))
    }).on("error", reject)
  })

beforeAll(async () => {
  dir = tmp("server")
  run = await fusionRun(dir)
  server = await Effect.runPromise(Server.listen({ runsDir: run.runsDir, port: 0, pollMs: 100 }))
})
afterAll(async () => {
  await Effect.runPromise(server.close)
  fs.rmSync(dir, { recursive: true, force: true })
})

describe("the dashboard server", () => {
  it("listens on 127.0.0.1 only, and answers the run list as HTML and JSON", async () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
    const page = await get(server.url)
    expect(page.status).toBe(200)
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8")
    expect(page.body).toContain(`<tr data-run="fusion">`)
    const api = JSON.parse((await get(`${server.url}api/runs`)).body)
    expect(api.runs.map((r: { runId: string }) => r.runId)).toEqual(["fusion"])
    expect(api.runs[0]).toMatchObject({ status: "failed", pipeline: "fusion" })
  })

  it("answers a run's view model and page", async () => {
    const view = JSON.parse((await get(`${server.url}api/runs/fusion`)).body)
    expect(view.stages.map((s: { id: string }) => s.id)).toEqual([...fusionStages])
    expect(view.spansFrom).toBe("trace")
    const page = await get(`${server.url}runs/fusion`)
    expect(page.status).toBe(200)
    expect(page.headers["content-security-policy"]).toContain("default-src 'self'")
    for (const id of fusionStages) expect(page.body).toContain(`data-stage="${id}"`)
    expect(page.body).toContain(`<img src="/runs/fusion/files/curve.svg"`)
  })

  it("serves a run's own files with a policy that forbids scripts, and nothing outside the run", async () => {
    const svg = await get(`${server.url}runs/fusion/files/curve.svg`)
    expect(svg.status).toBe(200)
    expect(svg.headers["content-type"]).toBe("image/svg+xml")
    expect(svg.headers["content-security-policy"]).toBe("default-src 'none'; style-src 'unsafe-inline'; img-src data:")
    expect(svg.body).toBe(fs.readFileSync(path.join(run.runDir, "curve.svg"), "utf8"))
    for (const p of ["runs/fusion/files/..%2F..%2Ffusion.yaml", "runs/fusion/files/%2Fetc%2Fpasswd", "runs/..%2F..%2Fetc/files/passwd", "runs/fusion/files/../../../fusion.yaml", "runs/fusion/files/%2e%2e/%2e%2e/fusion.yaml"]) {
      const r = await get(server.url + p)
      expect(r.status, p).toBe(404)
      expect(r.body).not.toContain("version: 1")
    }
    const api = await get(`${server.url}api/runs/..%2F..%2Fetc`)
    expect(api.status).toBe(404)
    expect(JSON.parse(api.body)).toMatchObject({ error: "InvalidRunId" })
    expect(JSON.parse((await get(`${server.url}api/runs/nope`)).body)).toMatchObject({ error: "RunNotFound" })
    expect((await get(`${server.url}api/runs/%E0%A4%A`)).status).toBe(400)
  })

  it("does not follow a symlinked events.jsonl, manifest or file out of its folder", async () => {
    const secret = path.join(dir, "secret.jsonl")
    fs.writeFileSync(secret, `${JSON.stringify({ type: "stage-started", time: 1, stage: "top-secret", kind: "load" })}\n`)
    const manifest = JSON.parse(fs.readFileSync(path.join(run.runDir, "manifest.json"), "utf8"))
    // A run whose event log is a symlink to a file outside the runs folder.
    fs.mkdirSync(path.join(run.runsDir, "linked-events"))
    fs.writeFileSync(path.join(run.runsDir, "linked-events", "manifest.json"), JSON.stringify({ ...manifest, runId: "linked-events" }))
    fs.symlinkSync(secret, path.join(run.runsDir, "linked-events", "events.jsonl"))
    fs.symlinkSync(secret, path.join(run.runsDir, "linked-events", "notes.txt"))
    // A run whose manifest is a symlink to one outside.
    fs.writeFileSync(path.join(dir, "outside-manifest.json"), JSON.stringify({ ...manifest, runId: "linked-manifest" }))
    fs.mkdirSync(path.join(run.runsDir, "linked-manifest"))
    fs.symlinkSync(path.join(dir, "outside-manifest.json"), path.join(run.runsDir, "linked-manifest", "manifest.json"))

    const sse = await readSse(`${server.url}api/runs/linked-events/events`)
    expect(sse.status).toBe(200)
    expect(sse.messages.map((m) => m.data).join("\n")).not.toContain("top-secret")
    const view = await get(`${server.url}api/runs/linked-events`)
    expect(view.body).not.toContain("top-secret")
    expect(JSON.parse(view.body)).toMatchObject({ error: "RunUnreadable" })
    expect(JSON.parse(view.body).message).toContain("symbolic link")
    const notes = await get(`${server.url}runs/linked-events/files/notes.txt`)
    expect(notes.status).toBe(404)
    expect(notes.body).not.toContain("top-secret")

    const runs = JSON.parse((await get(`${server.url}api/runs`)).body).runs.map((r: { runId: string }) => r.runId)
    expect(runs).toContain("linked-events")
    expect(runs).not.toContain("linked-manifest")
    expect(JSON.parse((await get(`${server.url}api/runs/linked-manifest`)).body)).toMatchObject({ error: "RunNotFound" })
  })

  it("refuses other hosts (DNS rebinding) and other methods", async () => {
    expect((await get(`${server.url}api/runs`, { host: "evil.example" })).status).toBe(403)
    expect((await get(`${server.url}api/runs`, {}, "POST")).status).toBe(405)
  })

  it("says which port is taken when it cannot listen", async () => {
    const error = await Effect.runPromise(Effect.flip(Server.listen({ runsDir: run.runsDir, port: server.port })))
    expect(error._tag).toBe("ServerUnavailable")
    expect(error.message).toContain(`127.0.0.1:${server.port}: EADDRINUSE`)
  })
})

describe("live events (Server-Sent Events)", () => {
  it("streams a running run's events.jsonl line by line as it grows, then ends", async () => {
    const liveDir = tmp("sse")
    const pipeline = await slowPipeline(liveDir)
    const runsDir = path.join(liveDir, "runs")
    const live = await Effect.runPromise(Server.listen({ runsDir, port: 0, pollMs: 100 }))
    try {
      const child = startCrucible(["run", pipeline, "--runs-dir", runsDir, "--run-id", "slow", "--concurrency", "1", "--quiet"])
      const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.on("exit", (code) => resolve({ code, at: Date.now() })))
      const manifest = path.join(runsDir, "slow", "manifest.json")
      while (!fs.existsSync(manifest)) await new Promise((r) => setTimeout(r, 20))
      const stream = readSse(`${live.url}api/runs/slow/events?from=0`)
      const [{ status, type, messages }, exit] = await Promise.all([stream, exited])
      expect(exit.code).toBe(0)
      expect(status).toBe(200)
      expect(type).toBe("text/event-stream; charset=utf-8")
      const data = messages.filter((m) => m.event === undefined)
      const lines = fs.readFileSync(path.join(runsDir, "slow", "events.jsonl"), "utf8").trim().split("\n")
      expect(data.map((m) => m.data)).toEqual(lines)
      expect(data.map((m) => m.id)).toEqual(lines.map((_, i) => String(i)))
      expect(messages.at(-1)!.event).toBe("end")
      // Live: events reached the client while the run was still going.
      const lastStart = data.findLast((m) => m.data.includes(`"type":"stage-started"`))!
      expect(lastStart.at).toBeLessThan(exit.at)
      // A reconnecting client resumes after the last id it saw.
      const resumed = await readSse(`${live.url}api/runs/slow/events`, { "last-event-id": "3" })
      expect(resumed.messages.filter((m) => m.event === undefined).map((m) => m.id)).toEqual(lines.slice(4).map((_, i) => String(i + 4)))
    } finally {
      await Effect.runPromise(live.close)
      fs.rmSync(liveDir, { recursive: true, force: true })
    }
  })
})
