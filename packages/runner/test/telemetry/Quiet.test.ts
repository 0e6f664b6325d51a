import { Effect } from "effect"
import * as net from "node:net"
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest"
import * as Telemetry from "../../src/telemetry/Telemetry.ts"
import * as OtlpReceiver from "../support/OtlpReceiver.ts"
import { sampleRun } from "../support/SampleRun.ts"

// Every outgoing TCP connection in Node — http, http2 (gRPC), fetch — goes through
// `net.Socket.prototype.connect`; the spy watches it and still calls through.
describe("with no exporter configured", () => {
  let receiver: OtlpReceiver.OtlpReceiver
  beforeEach(async () => {
    receiver = await OtlpReceiver.start()
  })
  afterEach(async () => {
    vi.restoreAllMocks()
    await receiver.close()
  })

  const runWatched = async (options: Telemetry.TelemetryOptions) => {
    const connect = vi.spyOn(net.Socket.prototype, "connect")
    const result = await Effect.runPromise(
      Effect.gen(function* () {
        const value = yield* sampleRun
        const telemetry = yield* Telemetry.Telemetry
        return { value, settings: telemetry.settings }
      }).pipe(Effect.provide(Telemetry.layer(options)))
    )
    // Give any stray exporter timer a chance to fire before counting.
    await new Promise((resolve) => setTimeout(resolve, 200))
    return { ...result, connects: connect.mock.calls.length }
  }

  it("runs the program, records metrics into nothing, and never opens a connection", async () => {
    const { value, settings, connects } = await runWatched({ env: {} })
    expect(value).toEqual({ tensors: 3, mergeFailed: true })
    expect(settings.traces).toBeUndefined()
    expect(settings.metrics).toBeUndefined()
    expect(connects).toBe(0)
  })

  it("sends nothing to a listening receiver when OTEL_SDK_DISABLED=true", async () => {
    const env = { OTEL_SDK_DISABLED: "true", OTEL_EXPORTER_OTLP_ENDPOINT: receiver.httpUrl, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }
    const { value, connects } = await runWatched({ env })
    expect(value.mergeFailed).toBe(true)
    expect(connects).toBe(0)
    expect(receiver.connections).toBe(0)
    expect(receiver.requests).toEqual([])
  })

  it("connects when the same settings are enabled (the watch above can see a connection)", async () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.httpUrl, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }
    const { connects } = await runWatched({ env })
    expect(connects).toBeGreaterThan(0)
    expect(receiver.connections).toBeGreaterThan(0)
    expect(receiver.spans).toHaveLength(3)
  })
})
