import { Cause, Effect, Exit, Fiber, Logger, Result } from "effect"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import * as Shutdown from "../../src/telemetry/Shutdown.ts"
import * as Telemetry from "../../src/telemetry/Telemetry.ts"
import { InvalidSetting, TraceFileUnwritable } from "../../src/telemetry/TelemetryError.ts"
import { spansOf } from "../support/OtlpDecode.ts"
import * as OtlpReceiver from "../support/OtlpReceiver.ts"
import { StageBroke } from "../support/SampleRun.ts"

const readTrace = (file: string) => spansOf(JSON.parse(fs.readFileSync(file, "utf8")), "file")

describe("the layer's release", () => {
  const otlp = OtlpReceiver.eachTest()

  const options = (traceFile: string): Telemetry.TelemetryOptions => ({
    traceFile,
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.receiver.httpUrl, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }
  })

  it("exports and writes every span when the program fails, and the program's error is what fails", async () => {
    const traceFile = path.join(otlp.directory, "trace.json")
    const failing = Effect.gen(function* () {
      yield* Effect.void.pipe(Effect.withSpan("stage ok"))
      return yield* new StageBroke({ stage: "last" }).pipe(Effect.withSpan("stage last"))
    }).pipe(Effect.withSpan("run failing"))
    const exit = await Effect.runPromiseExit(failing.pipe(Effect.provide(Telemetry.layer(options(traceFile)))))
    expect(Exit.isFailure(exit) && Cause.squash(exit.cause)).toBeInstanceOf(StageBroke)

    await otlp.receiver.waitFor((r) => r.spans.length >= 3)
    const statuses = Object.fromEntries(otlp.receiver.spans.map((span) => [span.name, span.status.code]))
    expect(statuses).toEqual({ "stage ok": "UNSET", "stage last": "ERROR", "run failing": "ERROR" })
    expect(readTrace(traceFile).map((span) => span.name).sort()).toEqual(["run failing", "stage last", "stage ok"])
  })

  it("exports and writes the interrupted spans when the run is interrupted from outside", async () => {
    const traceFile = path.join(otlp.directory, "trace.json")
    let started!: () => void
    const running = new Promise<void>((resolve) => (started = resolve))
    const stuck = Effect.gen(function* () {
      yield* Effect.void.pipe(Effect.withSpan("stage done"))
      yield* Effect.sync(() => started())
      return yield* Effect.never
    }).pipe(Effect.withSpan("stage stuck"), Effect.withSpan("run interrupted"))
    const fiber = Effect.runFork(stuck.pipe(Effect.provide(Telemetry.layer(options(traceFile)))))
    await running
    await Effect.runPromise(Fiber.interrupt(fiber))

    await otlp.receiver.waitFor((r) => r.spans.length >= 3)
    const interrupted = otlp.receiver.spans.find((span) => span.name === "stage stuck")
    expect(interrupted?.attributes["effect.fiber.interrupted"]).toBe(true)
    const fromFile = readTrace(traceFile)
    expect(fromFile.map((span) => span.name).sort()).toEqual(["run interrupted", "stage done", "stage stuck"])
    expect(new Set(fromFile.map((span) => span.traceId)).size).toBe(1)
    expect(fs.readdirSync(otlp.directory)).toEqual(["trace.json"])
  })

  it("still finishes and writes the trace file when the collector is down", async () => {
    // A port that was just free: connections to it are refused.
    const closed = http.createServer()
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise<void>((resolve) => closed.close(() => resolve()))

    const traceFile = path.join(otlp.directory, "trace.json")
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_EXPORTER_OTLP_TIMEOUT: "500" }
    const logged: Array<string> = []
    const capture = Logger.make(({ logLevel, message }) => logged.push(`${logLevel}: ${[message].flat().join(" ")}`))
    const value = await Effect.runPromise(
      Effect.succeed(7).pipe(
        Effect.withSpan("run offline"),
        Effect.provide(Telemetry.layer({ env, traceFile, shutdownTimeoutMillis: 2_000 })),
        Effect.provide(Logger.layer([capture]))
      )
    )
    expect(value).toBe(7)
    expect(readTrace(traceFile).map((span) => span.name)).toEqual(["run offline"])
    // One warning for the run, naming both signals' URLs.
    const base = `http://127.0.0.1:${port}`
    expect(logged.filter((line) => line.startsWith("Warn:"))).toEqual([
      expect.stringMatching(new RegExp(`^Warn: telemetry: spans and metrics could not be exported to ${base}/v1/traces \\(http/protobuf\\) and ${base}/v1/metrics \\(http/protobuf\\): \\d+ failed export\\(s\\), last: .*ECONNREFUSED`))
    ])
  })
})

describe("the layer fails before any work", () => {
  const failureOf = (options: Telemetry.TelemetryOptions) =>
    Effect.runPromise(Effect.result(Effect.succeed("ran").pipe(Effect.provide(Telemetry.layer(options)))))

  it("with InvalidSetting for an unusable variable", async () => {
    const result = await failureOf({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_EXPORTER_OTLP_PROTOCOL: "thrift" } })
    expect(Result.isFailure(result) && result.failure).toBeInstanceOf(InvalidSetting)
  })

  it("with TraceFileUnwritable when the trace file's directory cannot exist", async () => {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-otel-"))
    try {
      const blocker = path.join(directory, "a-file")
      fs.writeFileSync(blocker, "not a directory")
      const result = await failureOf({ env: {}, traceFile: path.join(blocker, "trace.json") })
      if (Result.isSuccess(result)) throw new Error("expected the layer to fail")
      expect(result.failure).toBeInstanceOf(TraceFileUnwritable)
      expect(result.failure.message).toContain(path.join(blocker, "trace.json"))
    } finally {
      fs.rmSync(directory, { recursive: true, force: true })
    }
  })
})

describe("Shutdown.make: every signal at once, one deadline", () => {
  it("runs every part at once and stops waiting at the deadline", async () => {
    const shutdown = Shutdown.make(300)
    const started: Array<string> = []
    shutdown.add("traces", () => (started.push("traces"), new Promise<void>(() => {})))
    shutdown.add("metrics", () => (started.push("metrics"), Promise.reject(new Error("refused"))))
    const before = Date.now()
    const outcomes = await shutdown.run()
    expect(Date.now() - before).toBeGreaterThanOrEqual(290)
    expect(Date.now() - before).toBeLessThan(2_000)
    expect(started).toEqual(["traces", "metrics"])
    expect(outcomes).toEqual([
      { signal: "traces", result: "timed out", afterMillis: 300 },
      { signal: "metrics", result: "failed", error: new Error("refused") }
    ])
    // Later calls join the same shutdown.
    expect(await shutdown.run()).toBe(outcomes)
  })

  it("resolves as soon as every part is done", async () => {
    const shutdown = Shutdown.make(60_000)
    shutdown.add("traces", () => Promise.resolve())
    const before = Date.now()
    expect(await shutdown.run()).toEqual([{ signal: "traces", result: "done" }])
    expect(Date.now() - before).toBeLessThan(1_000)
  })
})
