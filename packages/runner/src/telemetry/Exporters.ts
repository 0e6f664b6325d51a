/**
 * The OTLP exporters for a resolved endpoint, one per protocol. Each exporter package is
 * imported only when its protocol is chosen, so a run without telemetry (or over HTTP) never
 * loads gRPC. Every setting comes from the `Endpoint` — URL, headers, timeout — so what
 * `Config.resolve` decided is what goes on the wire.
 *
 * @since 0.1.0
 */
import type { PushMetricExporter } from "@opentelemetry/sdk-metrics"
import type { SpanExporter } from "@opentelemetry/sdk-trace-base"
import { Effect } from "effect"
import type { Endpoint, Signal } from "./Config.ts"
import * as GrpcMetricExporter from "./GrpcMetricExporter.ts"

const httpConfig = (endpoint: Endpoint) => ({
  url: endpoint.url,
  headers: { ...endpoint.headers },
  timeoutMillis: endpoint.timeoutMillis
})

/** An exporter of spans to `endpoint`. @category constructors */
export const spanExporter = (endpoint: Endpoint): Effect.Effect<SpanExporter> =>
  Effect.promise(async (): Promise<SpanExporter> => {
    switch (endpoint.protocol) {
      case "http/json": {
        const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-http")
        return new OTLPTraceExporter(httpConfig(endpoint))
      }
      case "http/protobuf": {
        const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-proto")
        return new OTLPTraceExporter(httpConfig(endpoint))
      }
      case "grpc": {
        const [{ OTLPTraceExporter }, grpc] = await Promise.all([import("@opentelemetry/exporter-trace-otlp-grpc"), import("@grpc/grpc-js")])
        return new OTLPTraceExporter({
          url: endpoint.url,
          metadata: GrpcMetricExporter.metadataOf(grpc, endpoint.headers),
          timeoutMillis: endpoint.timeoutMillis
        })
      }
    }
  })

/** An exporter of metrics to `endpoint`, cumulative temporality (what Prometheus-style backends expect). @category constructors */
export const metricExporter = (endpoint: Endpoint): Effect.Effect<PushMetricExporter> =>
  Effect.promise(async (): Promise<PushMetricExporter> => {
    switch (endpoint.protocol) {
      case "http/json": {
        const { OTLPMetricExporter } = await import("@opentelemetry/exporter-metrics-otlp-http")
        return new OTLPMetricExporter(httpConfig(endpoint))
      }
      case "http/protobuf": {
        const { OTLPMetricExporter } = await import("@opentelemetry/exporter-metrics-otlp-proto")
        return new OTLPMetricExporter(httpConfig(endpoint))
      }
      case "grpc":
        return GrpcMetricExporter.make(await import("@grpc/grpc-js"), endpoint)
    }
  })

/**
 * Failed exports of one signal. The SDK reports a failed export only to its global error handler
 * (silent by default); counting them lets the layer say, once, at the end of the run, that
 * telemetry was lost and why.
 *
 * @category models
 */
export interface ExportFailures {
  count: number
  last: string | undefined
}

/** An empty failure record. @category constructors */
export const noFailures = (): ExportFailures => ({ count: 0, last: undefined })

const record = (failures: ExportFailures, error: unknown) => {
  failures.count++
  failures.last = error instanceof Error ? error.message : String(error)
}

type ExportResult = Parameters<Parameters<SpanExporter["export"]>[1]>[0]

const watch = (failures: ExportFailures, done: (result: ExportResult) => void) => (result: ExportResult) => {
  // ExportResultCode.SUCCESS is 0.
  if (result.code !== 0) record(failures, result.error ?? "export failed")
  done(result)
}

/** `exporter`, with every failed export recorded in `failures`. @category combinators */
export const watchSpans = (exporter: SpanExporter, failures: ExportFailures): SpanExporter => {
  const watched: SpanExporter = {
    export: (spans, done) => exporter.export(spans, watch(failures, done)),
    shutdown: () => exporter.shutdown()
  }
  if (exporter.forceFlush !== undefined) watched.forceFlush = () => exporter.forceFlush!()
  return watched
}

/** `exporter`, with every failed export recorded in `failures`. @category combinators */
export const watchMetrics = (exporter: PushMetricExporter, failures: ExportFailures): PushMetricExporter => {
  const watched: PushMetricExporter = {
    export: (metrics, done) => exporter.export(metrics, watch(failures, done)),
    forceFlush: () => exporter.forceFlush(),
    shutdown: () => exporter.shutdown()
  }
  if (exporter.selectAggregationTemporality !== undefined) watched.selectAggregationTemporality = exporter.selectAggregationTemporality.bind(exporter)
  if (exporter.selectAggregation !== undefined) watched.selectAggregation = exporter.selectAggregation.bind(exporter)
  return watched
}

/** Records a rejected flush or shutdown. @category combinators */
export const recordFailure = record

/** A signal exported over OTLP, and its failed exports. @category models */
export interface SignalExport {
  readonly signal: Signal
  readonly endpoint: Endpoint
  readonly failures: ExportFailures
}

/**
 * The one warning of a run whose exports failed, naming every endpoint that lost data and the
 * last error of each; undefined when none did. One line for the run, whatever the number of
 * batches or signals, so an unreachable collector is one line of stderr, not a stream.
 *
 * @category formatting
 */
export const failureLine = (exports: ReadonlyArray<SignalExport>): string | undefined => {
  const failed = exports.filter((e) => e.failures.count > 0)
  if (failed.length === 0) return undefined
  const what = failed.map((e) => (e.signal === "traces" ? "spans" : "metrics")).join(" and ")
  const where = [...new Set(failed.map((e) => `${e.endpoint.url} (${e.endpoint.protocol})`))].join(" and ")
  const count = failed.reduce((n, e) => n + e.failures.count, 0)
  const last = [...new Set(failed.flatMap((e) => (e.failures.last === undefined ? [] : [e.failures.last])))].join("; ")
  return `telemetry: ${what} could not be exported to ${where}: ${count} failed export(s), last: ${last}`
}
