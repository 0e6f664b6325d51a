// An OTLP endpoint that cannot be reached costs a run about the export timeout (1.5 s by default)
// at its end, whatever the protocol, and one warning line. Two ways to be unreachable: a port
// where nothing listens (connections refused at once) and a server that accepts and never answers
// (a black hole: only a timeout ends the wait). The bounds are behaviour bounds, not benchmarks:
// before, these runs took 13–15 s.
import { Effect, Logger } from "effect"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { protocols } from "../../src/telemetry/Config.ts"
import * as Telemetry from "../../src/telemetry/Telemetry.ts"
import { crucibleAsync } from "../e2e/cli.ts"
import { writeModel } from "../e2e/models.ts"
import { sampleRun } from "../support/SampleRun.ts"

/** A port of 127.0.0.1 that was just free: connecting to it is refused. */
const refusedPort = async (): Promise<number> => {
  const server = http.createServer()
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** A TCP server on 127.0.0.1 that accepts every connection and never sends a byte. */
const blackHole = async () => {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on("error", () => {})
    socket.on("close", () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      for (const socket of sockets) socket.destroy()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

const endpoints = { refused: 0, "black hole": 0 }
let hole: Awaited<ReturnType<typeof blackHole>>
beforeAll(async () => {
  hole = await blackHole()
  endpoints.refused = await refusedPort()
  endpoints["black hole"] = hole.port
})
afterAll(() => hole.close())

// Concurrent: each case mostly waits for its timeout.
describe("an unreachable OTLP endpoint, in process", () => {
  it.concurrent.each(protocols.flatMap((protocol) => Object.keys(endpoints).map((how) => [protocol, how] as const)))(
    "over %s, %s: the run ends within a few seconds and warns once, naming the endpoint",
    async (protocol, how) => {
      const url = `http://127.0.0.1:${endpoints[how as keyof typeof endpoints]}`
      const directory = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-otlp-down-"))
      const traceFile = path.join(directory, "trace.json")
      const warnings: Array<string> = []
      const capture = Logger.make(({ logLevel, message }) => {
        if (logLevel === "Warn") warnings.push([message].flat().join(" "))
      })
      const before = Date.now()
      try {
        const value = await Effect.runPromise(
          sampleRun.pipe(
            Effect.provide(Telemetry.layer({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_EXPORTER_OTLP_PROTOCOL: protocol }, traceFile })),
            Effect.provide(Logger.layer([capture]))
          )
        )
        const elapsed = Date.now() - before
        expect(value.tensors).toBe(3)
        expect(elapsed, `${protocol} ${how} took ${elapsed} ms`).toBeLessThan(5_000)
        expect(warnings).toHaveLength(1)
        expect(warnings[0]).toMatch(/^telemetry: spans and metrics could not be exported to /)
        expect(warnings[0]).toContain(url)
        expect(warnings[0]).toContain(`(${protocol})`)
        // The trace file does not depend on the collector.
        expect(JSON.parse(fs.readFileSync(traceFile, "utf8")).resourceSpans).toHaveLength(1)
      } finally {
        fs.rmSync(directory, { recursive: true, force: true })
      }
    }
  )
})

describe("an unreachable OTLP endpoint, from the command line", () => {
  it.each(["refused", "black hole"] as const)("%s: `crucible run --otlp` ends within a few seconds with one warning line on stderr", async (how) => {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-otlp-cli-"))
    try {
      for (const [i, name] of ["a", "b"].entries()) await writeModel(path.join(directory, `${name}.safetensors`), [{ name: "w", shape: [64, 64] }], i)
      const pipeline = path.join(directory, "p.yaml")
      fs.writeFileSync(pipeline, `version: 1
name: otlp-down
stages:
  a: { uses: load, with: { path: a.safetensors } }
  b: { uses: load, with: { path: b.safetensors } }
  avg: { uses: merge/linear, with: { models: [a, b] } }
  out: { uses: save, with: { model: avg, path: out/avg.safetensors } }
`)
      const url = `http://127.0.0.1:${endpoints[how]}`
      const before = Date.now()
      const run = await crucibleAsync(["run", pipeline, "--runs-dir", path.join(directory, "runs"), "--quiet", "--otlp", url], {
        env: { OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf" }
      })
      const elapsed = Date.now() - before
      expect(run.code, run.stderr).toBe(0)
      expect(elapsed, `took ${elapsed} ms`).toBeLessThan(5_000)
      const lines = run.stderr.split("\n").filter((line) => line !== "")
      expect(lines, run.stderr).toHaveLength(1)
      expect(lines[0]).toContain(`telemetry: spans and metrics could not be exported to ${url}/v1/traces (http/protobuf) and ${url}/v1/metrics (http/protobuf)`)
    } finally {
      fs.rmSync(directory, { recursive: true, force: true })
    }
  })
})
