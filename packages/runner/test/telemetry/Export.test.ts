import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import type { Protocol } from "../../src/telemetry/Config.ts"
import { names, stageDurationBuckets } from "../../src/telemetry/Metrics.ts"
import * as Telemetry from "../../src/telemetry/Telemetry.ts"
import { spansOf, type NumberPoint, type ReceivedMetric, type ReceivedSpan } from "../support/OtlpDecode.ts"
import * as OtlpReceiver from "../support/OtlpReceiver.ts"
import { recorded, sampleRun, spanNames } from "../support/SampleRun.ts"

// Each protocol is configured through a different, equally standard, set of variables.
const environments: Record<Protocol, (receiver: OtlpReceiver.OtlpReceiver) => Record<string, string>> = {
  "http/json": (receiver) => ({ OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_EXPORTER_OTLP_ENDPOINT: receiver.httpUrl }),
  // No protocol variable: http/protobuf is the default; full per-signal URLs.
  "http/protobuf": (receiver) => ({
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.httpUrl}/v1/traces`,
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${receiver.httpUrl}/v1/metrics`
  }),
  grpc: (receiver) => ({ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc", OTEL_EXPORTER_OTLP_ENDPOINT: receiver.grpcUrl })
}

const comparable = (span: ReceivedSpan) => ({
  traceId: span.traceId,
  spanId: span.spanId,
  parentSpanId: span.parentSpanId,
  name: span.name,
  startTimeUnixNano: span.startTimeUnixNano,
  endTimeUnixNano: span.endTimeUnixNano,
  attributes: span.attributes,
  events: span.events,
  status: span.status,
  resource: span.resource
})

const byName = (spans: ReadonlyArray<ReceivedSpan>, name: string): ReceivedSpan => {
  const found = spans.filter((span) => span.name === name)
  expect(found, `exactly one span named ${name}`).toHaveLength(1)
  return found[0]!
}

const lastPoint = (metrics: ReadonlyArray<ReceivedMetric>, name: string) => {
  const found = metrics.filter((metric) => metric.name === name)
  expect(found.length, `metric ${name} arrived`).toBeGreaterThan(0)
  return found[found.length - 1]!
}

const numberPoints = (metrics: ReadonlyArray<ReceivedMetric>, name: string): ReadonlyArray<NumberPoint> => {
  const metric = lastPoint(metrics, name)
  if (metric.type === "histogram") throw new Error(`${name} arrived as a histogram`)
  return metric.points
}

describe.each(Object.keys(environments) as Array<Protocol>)("export over %s", (protocol) => {
  const otlp = OtlpReceiver.eachTest()

  it("delivers one trace with its links, attributes, event and error, and the same spans to the trace file", async () => {
    const traceFile = path.join(otlp.directory, "run", "trace.json")
    const env = {
      ...environments[protocol](otlp.receiver),
      OTEL_SERVICE_NAME: `crucible-test-${protocol}`,
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=ci,team=fusion%20lab",
      OTEL_EXPORTER_OTLP_HEADERS: "x-crucible-token=s3cret%2Fvalue"
    }
    const result = await Effect.runPromise(sampleRun.pipe(Effect.provide(Telemetry.layer({ env, traceFile, runId: "run-42" }))))
    expect(result).toEqual({ tensors: 3, mergeFailed: true })

    await otlp.receiver.waitFor((r) => r.spans.length >= 3)
    expect(otlp.receiver.errors).toEqual([])
    expect(new Set(otlp.receiver.spans.map((span) => span.via))).toEqual(new Set([protocol]))
    const spans = otlp.receiver.spans
    expect(spans).toHaveLength(3)
    const run = byName(spans, spanNames.run)
    const load = byName(spans, spanNames.load)
    const merge = byName(spans, spanNames.merge)

    expect(run.traceId).toMatch(/^[0-9a-f]{32}$/)
    expect(new Set(spans.map((span) => span.traceId))).toEqual(new Set([run.traceId]))
    expect(run.parentSpanId).toBeUndefined()
    expect(load.parentSpanId).toBe(run.spanId)
    expect(merge.parentSpanId).toBe(run.spanId)
    expect(new Set(spans.map((span) => span.spanId)).size).toBe(3)
    expect(load.startTimeUnixNano).toBeGreaterThanOrEqual(run.startTimeUnixNano)
    expect(merge.endTimeUnixNano).toBeLessThanOrEqual(run.endTimeUnixNano)

    expect(run.attributes["crucible.pipeline.name"]).toBe("sample")
    expect(load.attributes).toMatchObject({ "crucible.stage.id": "load", "crucible.stage.kind": "load", "crucible.file": "models/a.safetensors" })
    expect(merge.attributes).toMatchObject({ "crucible.stage.id": "merge", "crucible.stage.kind": "merge/linear", "crucible.tensors": 3 })
    const read = load.events.find((event) => event.name === "tensor.read")
    expect(read?.attributes).toEqual({ "tensor.name": "layer0.weight", "tensor.bytes": 4096 })
    expect(read!.timeUnixNano).toBeGreaterThanOrEqual(load.startTimeUnixNano)
    expect(load.events.filter((event) => event.name === "epoch").map((event) => event.attributes)).toEqual([
      { "crucible.epoch": 1, "crucible.split": "train", "crucible.loss": 1.25, "crucible.accuracy": 0.625 },
      { "crucible.epoch": 2, "crucible.split": "train", "crucible.loss": 0.5, "crucible.accuracy": 0.875 }
    ])

    // A span that succeeds leaves its status unset (as OpenTelemetry asks of instrumentation;
    // @effect/opentelemetry 4.1.5 stopped setting OK), one that fails says ERROR with the message.
    expect(run.status.code).toBe("UNSET")
    expect(load.status.code).toBe("UNSET")
    expect(merge.status).toEqual({ code: "ERROR", message: "stage merge failed on purpose" })
    const exception = merge.events.find((event) => event.name === "exception")
    expect(exception?.attributes["exception.message"]).toBe("stage merge failed on purpose")
    expect(exception?.attributes["exception.type"]).toBe("StageBroke")

    expect(run.resource).toMatchObject({
      "service.name": `crucible-test-${protocol}`,
      "service.version": "0.1.0",
      "crucible.run.id": "run-42",
      "deployment.environment": "ci",
      team: "fusion lab"
    })
    for (const request of otlp.receiver.requests) expect(request.headers["x-crucible-token"]).toBe("s3cret/value")

    // The trace file: OTLP/JSON, the same spans, nothing half-written left beside it.
    expect(fs.readdirSync(path.dirname(traceFile))).toEqual(["trace.json"])
    const fromFile = spansOf(JSON.parse(fs.readFileSync(traceFile, "utf8")), "file")
    const sortById = (list: ReadonlyArray<ReceivedSpan>) => [...list].sort((a, b) => a.spanId.localeCompare(b.spanId)).map(comparable)
    expect(sortById(fromFile)).toEqual(sortById(spans))
  })

  it("delivers the counters, the stage histogram, the gauges and resident memory", async () => {
    const env = { ...environments[protocol](otlp.receiver), OTEL_SERVICE_NAME: "crucible-metrics", OTEL_EXPORTER_OTLP_METRICS_HEADERS: "x-signal=metrics" }
    await Effect.runPromise(sampleRun.pipe(Effect.provide(Telemetry.layer({ env }))))
    await otlp.receiver.waitFor((r) => r.metrics.some((metric) => metric.name === names.stageDuration))
    expect(otlp.receiver.errors).toEqual([])
    const metrics = otlp.receiver.metrics
    expect(new Set(metrics.map((metric) => metric.via))).toEqual(new Set([protocol]))
    expect(metrics[0]!.resource["service.name"]).toBe("crucible-metrics")
    const metricRequests = otlp.receiver.requests.filter((request) => request.signal === "metrics")
    expect(metricRequests.length).toBeGreaterThan(0)
    for (const request of metricRequests) expect(request.headers["x-signal"]).toBe("metrics")

    const bytesRead = lastPoint(metrics, names.bytesRead)
    expect(bytesRead).toMatchObject({ type: "sum", isMonotonic: true, unit: "By" })
    expect(bytesRead.points).toEqual([{ attributes: { "crucible.stage.id": "load", "crucible.stage.kind": "load" }, value: recorded.bytesRead }])
    expect(lastPoint(metrics, names.bytesWritten).points).toEqual([{ attributes: { "crucible.stage.id": "merge" }, value: recorded.bytesWritten }])
    expect(numberPoints(metrics, names.tensorsProcessed).map((point) => point.value)).toEqual([recorded.tensors])

    const duration = lastPoint(metrics, names.stageDuration)
    expect(duration).toMatchObject({ type: "histogram", unit: "s" })
    if (duration.type !== "histogram") throw new Error("unreachable")
    const outcomes = Object.fromEntries(duration.points.map((point) => [String(point.attributes["crucible.stage.id"]), point]))
    expect(outcomes["load"]!.attributes["crucible.stage.outcome"]).toBe("success")
    expect(outcomes["merge"]!.attributes["crucible.stage.outcome"]).toBe("failure")
    for (const point of duration.points) {
      expect(point.count).toBe(1)
      expect(point.explicitBounds).toEqual(stageDurationBuckets)
      expect(point.bucketCounts.reduce((a, b) => a + b, 0)).toBe(1)
      expect(point.sum).toBeGreaterThan(0)
      expect(point.sum).toBeLessThan(60)
      expect(point.min).toBe(point.sum)
    }

    const loss = lastPoint(metrics, names.loss)
    expect(loss.type).toBe("gauge")
    expect(loss.points).toEqual([{ attributes: { "crucible.stage.id": "load", "crucible.split": "train" }, value: recorded.loss[1] }])
    expect(numberPoints(metrics, names.accuracy).map((point) => point.value)).toEqual([recorded.accuracy[1]])
    expect(numberPoints(metrics, names.epoch).map((point) => point.value)).toEqual([2])
    const rss = lastPoint(metrics, names.residentMemory)
    expect(rss.type).toBe("gauge")
    expect(numberPoints(metrics, names.residentMemory)[0]!.value).toBeGreaterThan(16 * 1024 * 1024)
  })
})

describe("the OTLP/JSON trace file", () => {
  it("is the body an OTLP/HTTP JSON receiver accepts", async () => {
    const receiver = await OtlpReceiver.start()
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-otel-"))
    try {
      const traceFile = path.join(directory, "trace.json")
      await Effect.runPromise(sampleRun.pipe(Effect.provide(Telemetry.layer({ env: {}, traceFile }))))
      // Replay the file as-is, the way `curl --data-binary @trace.json` would.
      const response = await fetch(`${receiver.httpUrl}/v1/traces`, { method: "POST", headers: { "content-type": "application/json" }, body: fs.readFileSync(traceFile) })
      expect(response.status).toBe(200)
      expect(receiver.errors).toEqual([])
      expect(receiver.spans.map((span) => span.name).sort()).toEqual([spanNames.load, spanNames.merge, spanNames.run].sort())
      expect(receiver.spans[0]!.resource["service.name"]).toBe("crucible")
    } finally {
      await receiver.close()
      fs.rmSync(directory, { recursive: true, force: true })
    }
  })
})
