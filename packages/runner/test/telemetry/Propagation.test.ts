import { Effect, Option } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { Worker } from "node:worker_threads"
import { describe, expect, it } from "vitest"
import * as Propagation from "../../src/telemetry/Propagation.ts"
import * as Telemetry from "../../src/telemetry/Telemetry.ts"
import * as WorkerSpans from "../../src/telemetry/WorkerSpans.ts"
import { spansOf, type ReceivedSpan } from "../support/OtlpDecode.ts"
import * as OtlpReceiver from "../support/OtlpReceiver.ts"

describe("traceparent", () => {
  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
  const spanId = "00f067aa0ba902b7"

  it("formats and parses version 00, keeping the sampled flag", () => {
    expect(Propagation.formatTraceparent({ traceId, spanId, traceFlags: 1 })).toBe(`00-${traceId}-${spanId}-01`)
    expect(Propagation.formatTraceparent({ traceId, spanId, traceFlags: 0 })).toBe(`00-${traceId}-${spanId}-00`)
    expect(Propagation.parseTraceparent(`00-${traceId}-${spanId}-01`)).toEqual(Option.some({ traceId, spanId, traceFlags: 1 }))
    // A later version may append fields; they are ignored.
    expect(Propagation.parseTraceparent(`cc-${traceId}-${spanId}-09-what-the-future-holds`)).toEqual(Option.some({ traceId, spanId, traceFlags: 9 }))
  })

  it("rejects what the W3C specification calls invalid", () => {
    for (const header of [
      `00-${traceId.toUpperCase()}-${spanId}-01`,
      `ff-${traceId}-${spanId}-01`,
      `00-${"0".repeat(32)}-${spanId}-01`,
      `00-${traceId}-${"0".repeat(16)}-01`,
      `00-${traceId.slice(1)}-${spanId}-01`,
      `00-${traceId}-${spanId}-01-extra`,
      `00-${traceId}-${spanId}`,
      ""
    ]) {
      expect(Propagation.parseTraceparent(header), header).toEqual(Option.none())
    }
  })

  it("injects nothing outside a span, and the current span inside one (with or without telemetry installed)", async () => {
    expect(await Effect.runPromise(Propagation.inject)).toEqual(Option.none())
    const inside = await Effect.runPromise(
      Effect.gen(function* () {
        const span = yield* Effect.currentSpan
        return { span: { traceId: span.traceId, spanId: span.spanId }, carrier: yield* Propagation.inject }
      }).pipe(Effect.withSpan("native"))
    )
    expect(inside.carrier).toEqual(Option.some({ traceparent: `00-${inside.span.traceId}-${inside.span.spanId}-01` }))
  })

  it("runs an effect as a child of the carried span, and unchanged without a valid carrier", async () => {
    const parentOf = Effect.gen(function* () {
      const span = yield* Effect.currentSpan
      return { traceId: span.traceId, parent: Option.map(span.parent, (parent) => parent.spanId) }
    }).pipe(Effect.withSpan("child"))
    const carried = await Effect.runPromise(parentOf.pipe(Propagation.withParent({ traceparent: `00-${traceId}-${spanId}-01` })))
    expect(carried).toEqual({ traceId, parent: Option.some(spanId) })
    const invalid = await Effect.runPromise(parentOf.pipe(Propagation.withParent({ traceparent: "garbage" })))
    expect(invalid.traceId).not.toBe(traceId)
    expect(invalid.parent).toEqual(Option.none())
  })
})

describe("spans from a worker thread", () => {
  const otlp = OtlpReceiver.eachTest()

  interface WorkerResult {
    readonly sum: number
    readonly threadId: number
    readonly carrier: Propagation.TraceCarrier | undefined
  }

  const dispatch = (options: { readonly crash?: boolean; readonly drainTimeoutMillis?: number } = {}) =>
    Effect.gen(function* () {
      const init = yield* WorkerSpans.open(options.drainTimeoutMillis === undefined ? {} : { drainTimeoutMillis: options.drainTimeoutMillis })
      return yield* Effect.callback<WorkerResult, Error>((resume) => {
        const worker = new Worker(new URL("./fixtures/span-worker.ts", import.meta.url), { workerData: { telemetry: init, crash: options.crash }, transferList: [init.port] })
        worker.once("message", (result: WorkerResult) => resume(Effect.succeed(result)))
        worker.once("error", (error) => resume(Effect.fail(error)))
      })
    }).pipe(Effect.scoped, Effect.withSpan("dispatch"))
  const runInWorker = dispatch()

  it("land in the parent's trace, under the span that dispatched them, with the run's resource", async () => {
    const traceFile = path.join(otlp.directory, "trace.json")
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.receiver.httpUrl, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_SERVICE_NAME: "crucible-main" }
    const program = Effect.gen(function* () {
      const result = yield* runInWorker
      const span = yield* Effect.currentSpan
      return { result, run: span.spanId }
    }).pipe(Effect.withSpan("run with worker"))
    const { result } = await Effect.runPromise(program.pipe(Effect.provide(Telemetry.layer({ env, traceFile, runId: "run-w" }))))
    expect(result.sum).toBe(10)
    expect(result.threadId).toBeGreaterThan(0)

    await otlp.receiver.waitFor((r) => r.spans.length >= 4)
    const check = (spans: ReadonlyArray<ReceivedSpan>) => {
      const named = (name: string) => spans.find((span) => span.name === name)!
      const run = named("run with worker")
      const dispatch = named("dispatch")
      const task = named("worker task")
      const kernel = named("worker kernel")
      expect(spans).toHaveLength(4)
      expect(new Set(spans.map((span) => span.traceId))).toEqual(new Set([run.traceId]))
      expect(dispatch.parentSpanId).toBe(run.spanId)
      expect(task.parentSpanId).toBe(dispatch.spanId)
      expect(kernel.parentSpanId).toBe(task.spanId)
      expect(kernel.attributes).toMatchObject({ "worker.thread": result.threadId, "kernel.elements": 4 })
      expect(kernel.events.map((event) => [event.name, event.attributes])).toEqual([["kernel.done", { "kernel.sum": 10 }]])
      expect(task.startTimeUnixNano).toBeGreaterThanOrEqual(dispatch.startTimeUnixNano)
      expect(task.endTimeUnixNano).toBeLessThanOrEqual(dispatch.endTimeUnixNano)
      for (const span of [task, kernel]) expect(span.resource).toMatchObject({ "service.name": "crucible-main", "crucible.run.id": "run-w" })
      // The worker's own carrier named its task span: propagation works from inside the worker too.
      expect(result.carrier?.traceparent).toBe(`00-${task.traceId}-${task.spanId}-01`)
    }
    expect(otlp.receiver.errors).toEqual([])
    check(otlp.receiver.spans)
    check(spansOf(JSON.parse(fs.readFileSync(traceFile, "utf8")), "file"))
  })

  it("keep the spans that ended when the worker dies, and the channel closes with the worker, not at the drain timeout", async () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.receiver.httpUrl, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }
    // A drain timeout longer than this test's own timeout: only the worker's exit can end the wait.
    const program = dispatch({ crash: true, drainTimeoutMillis: 120_000 }).pipe(Effect.flip, Effect.withSpan("run crashing worker"))
    const error = await Effect.runPromise(program.pipe(Effect.provide(Telemetry.layer({ env }))))
    expect(error.message).toBe("worker crashed on purpose")
    await otlp.receiver.waitFor((r) => r.spans.length >= 3)
    const names = otlp.receiver.spans.map((span) => span.name).sort()
    expect(names).toEqual(["dispatch", "run crashing worker", "worker kernel"])
    const kernel = otlp.receiver.spans.find((span) => span.name === "worker kernel")!
    const dispatchSpan = otlp.receiver.spans.find((span) => span.name === "dispatch")!
    expect(kernel.traceId).toBe(dispatchSpan.traceId)
    expect(dispatchSpan.status.code).toBe("ERROR")
  }, 20_000)
})
