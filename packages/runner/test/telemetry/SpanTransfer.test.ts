import { ROOT_CONTEXT, SpanKind, SpanStatusCode, createTraceState, trace } from "@opentelemetry/api"
import { resourceFromAttributes } from "@opentelemetry/resources"
import { BasicTracerProvider } from "@opentelemetry/sdk-trace-base"
import { describe, expect, it } from "vitest"
import * as SpanTransfer from "../../src/telemetry/SpanTransfer.ts"
import * as TraceFile from "../../src/telemetry/TraceFile.ts"

describe("SpanTransfer", () => {
  it("survives structured cloning: the rebuilt span encodes to the same OTLP/JSON as the original", async () => {
    const collector = new TraceFile.SpanCollector()
    const resource = resourceFromAttributes({ "service.name": "transfer-test", "crucible.run.id": "r-7" })
    const provider = new BasicTracerProvider({ resource, spanProcessors: [collector] })
    const tracer = provider.getTracer("crucible-test", "1.2.3")
    const remoteParent = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
      spanId: "00f067aa0ba902b7",
      traceFlags: 1,
      isRemote: true,
      traceState: createTraceState("vendor=opaque,other=1")
    })
    const span = tracer.startSpan(
      "kernel",
      {
        kind: SpanKind.PRODUCER,
        attributes: { "kernel.size": 1024, "kernel.name": "sum", "kernel.flags": [true, false], "kernel.shape": [2, 3] },
        links: [{ context: { traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", traceFlags: 0 }, attributes: { "link.kind": "input" } }]
      },
      remoteParent
    )
    span.addEvent("chunk", { "chunk.index": 3 })
    span.setStatus({ code: SpanStatusCode.ERROR, message: "kernel overflowed" })
    span.end()
    await provider.shutdown()

    const original = collector.spans[0]!
    const rebuilt = SpanTransfer.fromData(structuredClone(SpanTransfer.toData(original)), resource)
    expect(new TextDecoder().decode(TraceFile.encode([rebuilt]))).toBe(new TextDecoder().decode(TraceFile.encode([original])))
    expect(rebuilt.parentSpanContext).toMatchObject({ spanId: "00f067aa0ba902b7", isRemote: true })
    expect(rebuilt.parentSpanContext?.traceState?.get("vendor")).toBe("opaque")
    expect(rebuilt.spanContext().traceId).toBe("4bf92f3577b34da6a3ce929d0e0e4736")
  })

  it("gives the rebuilt span the receiving side's resource", () => {
    const collector = new TraceFile.SpanCollector()
    const provider = new BasicTracerProvider({ resource: resourceFromAttributes({ "service.name": "worker" }), spanProcessors: [collector] })
    provider.getTracer("t").startSpan("root").end()
    const main = resourceFromAttributes({ "service.name": "main" })
    const rebuilt = SpanTransfer.fromData(SpanTransfer.toData(collector.spans[0]!), main)
    expect(rebuilt.resource).toBe(main)
    expect(rebuilt.parentSpanContext).toBeUndefined()
  })
})
