/**
 * The dashboard's HTTP server (`node:http`, 127.0.0.1 only): the run list, each run's page, the
 * JSON API the pages and tests share, Server-Sent Events following a run's `events.jsonl`, and the
 * run's own files (plots). Every run id and file path goes through {@link RunData}, so nothing
 * outside a run directory is ever served; requests naming another host are refused (DNS
 * rebinding).
 *
 * | route | answer |
 * |---|---|
 * | `GET /` | the run list (HTML) |
 * | `GET /runs/:id` | the run page (HTML, live while the run is in progress) |
 * | `GET /runs/:id/files/<path>` | a file of the run directory (artifacts, `report.html`) |
 * | `GET /api/runs` | the run list (JSON) |
 * | `GET /api/runs/:id` | the run's view model (JSON) |
 * | `GET /api/runs/:id/events?from=N` | SSE: one `message` per event line from line N, then `end` |
 *
 * @since 0.1.0
 */
import { Effect, type Scope } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import type { Reporter } from "../Events.ts"
import { escape } from "./Html.ts"
import * as Page from "./Page.ts"
import * as RunData from "./RunData.ts"
import type { InputPorts } from "./RunView.ts"
import * as Tail from "./Tail.ts"
import { FileNotServed, ServerUnavailable, type UiError } from "./UiError.ts"

/** A listening dashboard. @category models */
export interface UiServer {
  /** `http://127.0.0.1:<port>/` */
  readonly url: string
  readonly port: number
  readonly runsDir: string
  /** Ends every event stream (after sending what is on disk) and stops listening. */
  readonly close: Effect.Effect<void>
}

/** Options of {@link start}. */
export interface ServerOptions {
  readonly runsDir: string
  /** 0 (the default) picks any free port. */
  readonly port?: number
  /** How often event streams poll besides watching (default 500 ms). */
  readonly pollMs?: number
  /** Input ports of the kinds the runs used (default: the built-in kinds). */
  readonly inputPorts?: InputPorts
}

/** The port `crucible ui` listens on unless told otherwise. */
export const DEFAULT_PORT = 7411

const HOST = "127.0.0.1"
const PAGE_CSP = "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'"
// A served file (an SVG plot, say) must not run script on the dashboard's origin.
const FILE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
const TYPES: Readonly<Record<string, string>> = {
  ".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".json": "application/json",
  ".jsonl": "text/plain; charset=utf-8", ".txt": "text/plain; charset=utf-8", ".csv": "text/plain; charset=utf-8", ".html": "text/html; charset=utf-8"
}

const statusOf = (error: UiError): number => (error._tag === "RunUnreadable" ? 500 : 404)

const send = (res: http.ServerResponse, status: number, type: string, body: string | Buffer, extra: http.OutgoingHttpHeaders = {}) => {
  res.writeHead(status, { "content-type": type, "cache-control": "no-store", "x-content-type-options": "nosniff", ...extra })
  res.end(body)
}

const sendJson = (res: http.ServerResponse, status: number, value: unknown) => send(res, status, "application/json; charset=utf-8", JSON.stringify(value))

const sendHtml = (res: http.ServerResponse, status: number, html: string) => send(res, status, "text/html; charset=utf-8", html, { "content-security-policy": PAGE_CSP })

const fileUrl = (runId: string, relative: string) => `/runs/${encodeURIComponent(runId)}/files/${relative.split(/[\\/]/).map(encodeURIComponent).join("/")}`

const liveArtifact = (runId: string) => (relative: string): string => {
  const href = escape(fileUrl(runId, relative))
  return /\.(svg|png|jpe?g)$/i.test(relative)
    ? `<figure><img src="${href}" alt="${escape(relative)}"><figcaption class="note">${escape(relative)}</figcaption></figure>`
    : `<p><a href="${href}">${escape(relative)}</a></p>`
}

interface Stream {
  /** Sends what is left on disk, then `end`, and closes the response. */
  readonly finish: () => void
}

/** Starts the dashboard; it stops when the scope closes. */
export const start = (options: ServerOptions): Effect.Effect<UiServer, ServerUnavailable, Scope.Scope> =>
  Effect.acquireRelease(listen(options), (server) => server.close)

/** Starts the dashboard; the caller closes it. */
export const listen = (options: ServerOptions): Effect.Effect<UiServer, ServerUnavailable> =>
  Effect.callback<UiServer, ServerUnavailable>((resume) => {
    const runsDir = path.resolve(options.runsDir)
    const streams = new Set<Stream>()
    let port = options.port ?? 0
    const read = <A>(effect: Effect.Effect<A, UiError>) => Effect.runPromise(Effect.result(effect))

    const events = (req: http.IncomingMessage, res: http.ServerResponse, runDir: string, from: number) => {
      res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", connection: "keep-alive", "x-accel-buffering": "no" })
      res.write("retry: 1000\n\n")
      let ended = false
      let quietPolls = 0
      const finish = () => {
        if (ended) return
        tail.drain()
        ended = true
        tail.stop()
        clearInterval(ping)
        streams.delete(stream)
        res.end("event: end\ndata: {}\n\n")
      }
      const stream: Stream = { finish }
      const tail = Tail.follow(path.join(runDir, RunData.files.events), {
        fromLine: from,
        ...(options.pollMs === undefined ? {} : { pollMs: options.pollMs }),
        onLine: (line, index) => {
          if (ended) return
          quietPolls = 0
          res.write(`id: ${index}\ndata: ${line}\n\n`)
          if (line.includes('"type":"run-finished"')) queueMicrotask(finish)
        },
        // An interrupted or killed run writes no run-finished: end once the manifest says the run
        // is over and two polls in a row brought nothing (the final event follows the manifest).
        onPoll: () => {
          if (++quietPolls < 2) return
          Effect.runPromise(Effect.option(RunData.readManifest(runDir))).then((m) => {
            if (m._tag === "Some" && m.value.status !== "running") finish()
          }, () => undefined)
        }
      })
      const ping = setInterval(() => res.write(": ping\n\n"), 15_000)
      ping.unref()
      streams.add(stream)
      req.on("close", () => {
        ended = true
        tail.stop()
        clearInterval(ping)
        streams.delete(stream)
      })
    }

    const route = async (req: http.IncomingMessage, res: http.ServerResponse) => {
      const host = req.headers.host ?? ""
      if (host !== `${HOST}:${port}` && host !== `localhost:${port}`) return send(res, 403, "text/plain; charset=utf-8", `crucible ui answers only to ${HOST}:${port}\n`)
      if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "text/plain; charset=utf-8", "only GET\n", { allow: "GET, HEAD" })
      const url = new URL(req.url ?? "/", `http://${HOST}:${port}`)
      let parts: Array<string>
      try {
        parts = url.pathname.split("/").slice(1).map(decodeURIComponent)
      } catch {
        return send(res, 400, "text/plain; charset=utf-8", "malformed URL\n")
      }
      if (parts.length > 1 && parts[parts.length - 1] === "") parts.pop()
      const [a, b, c, d] = parts
      const api = a === "api"
      const fail = (error: UiError) => (api ? sendJson(res, statusOf(error), { error: error._tag, message: error.message }) : sendHtml(res, statusOf(error), Page.errorPage(statusOf(error), error.message)))
      const readOptions = options.inputPorts === undefined ? {} : { inputPorts: options.inputPorts }

      if (parts.length === 1 && a === "") return sendHtml(res, 200, Page.runsPage(await Effect.runPromise(RunData.listRuns(runsDir)), runsDir))
      if (api && b === "runs" && parts.length === 2) return sendJson(res, 200, { runsDir, runs: await Effect.runPromise(RunData.listRuns(runsDir)) })
      if (api && b === "runs" && c !== undefined && parts.length === 3) {
        const view = await read(RunData.readRun(runsDir, c, readOptions))
        return view._tag === "Success" ? sendJson(res, 200, view.success) : fail(view.failure)
      }
      if (api && b === "runs" && c !== undefined && d === "events" && parts.length === 4) {
        const dir = await read(RunData.runDirOf(runsDir, c))
        if (dir._tag === "Failure") return fail(dir.failure)
        // A reconnecting EventSource says where it stopped (Last-Event-ID); a page says what it shows (?from).
        const count = (text: unknown) => (typeof text === "string" && /^\d{1,9}$/.test(text) ? Number(text) : 0)
        const lastId = req.headers["last-event-id"]
        return events(req, res, dir.success, Math.max(count(url.searchParams.get("from")), typeof lastId === "string" && /^\d{1,9}$/.test(lastId) ? Number(lastId) + 1 : 0))
      }
      if (a === "runs" && b !== undefined && parts.length === 2) {
        const view = await read(RunData.readRun(runsDir, b, readOptions))
        return view._tag === "Success" ? sendHtml(res, 200, Page.runPage(view.success, { mode: "live", artifact: liveArtifact(b) })) : fail(view.failure)
      }
      if (a === "runs" && b !== undefined && c === "files" && parts.length > 3) {
        const file = await read(RunData.runFile(runsDir, b, parts.slice(3).join("/")))
        if (file._tag === "Failure") return fail(file.failure)
        const type = TYPES[path.extname(file.success).toLowerCase()] ?? "application/octet-stream"
        // Opened without following a symlink: a file swapped for one after the check is not served.
        let bytes: Buffer | undefined
        try {
          bytes = RunData.readNoFollow(file.success)
        } catch {
          bytes = undefined
        }
        if (bytes === undefined) return fail(new FileNotServed({ runId: b, path: parts.slice(3).join("/") }))
        return send(res, 200, type, bytes, { "content-security-policy": FILE_CSP })
      }
      return api ? sendJson(res, 404, { error: "NotFound", message: `no route ${url.pathname}` }) : sendHtml(res, 404, Page.errorPage(404, `nothing at ${url.pathname}`))
    }

    const server = http.createServer((req, res) => {
      route(req, res).catch((cause: unknown) => {
        if (!res.headersSent) send(res, 500, "text/plain; charset=utf-8", `internal error: ${cause instanceof Error ? cause.message : String(cause)}\n`)
        else res.end()
      })
    })
    server.once("error", (cause: NodeJS.ErrnoException) => resume(Effect.fail(new ServerUnavailable({ host: HOST, port, detail: cause.code ?? cause.message }))))
    server.listen({ port, host: HOST }, () => {
      port = (server.address() as AddressInfo).port
      const close = Effect.promise(
        () =>
          new Promise<void>((done) => {
            for (const s of [...streams]) s.finish()
            server.close(() => done())
            server.closeIdleConnections()
            // Connections still busy after a second (a slow client) are cut.
            setTimeout(() => server.closeAllConnections(), 1000).unref()
          })
      )
      resume(Effect.succeed({ url: `http://${HOST}:${port}/`, port, runsDir, close }))
    })
  })

/**
 * A reporter that also announces the run's page on the dashboard once the run has an id (with
 * its `run-started` event), for `crucible run --ui`.
 */
export const announcing = (reporter: Reporter["Service"], server: UiServer, print: (line: string) => Effect.Effect<void>): Reporter["Service"] => ({
  emit: (event) =>
    event.type === "run-started"
      ? Effect.andThen(reporter.emit(event), print(`dashboard: ${server.url}runs/${encodeURIComponent(event.runId)}`))
      : reporter.emit(event)
})
