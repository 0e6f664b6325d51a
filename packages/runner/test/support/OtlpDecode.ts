/**
 * One normalised shape for OTLP spans and metrics, whatever they arrived as: OTLP/JSON (hex ids,
 * decimal-string nanoseconds), or protobuf decoded by protobufjs / proto-loader into objects
 * (`longs: String`, ids as bytes). Tests compare what a receiver got, over any protocol, with
 * what a trace file holds through these types.
 */
import * as fs from "node:fs"
import * as path from "node:path"

/** How a record reached the test. */
export type Via = "http/json" | "http/protobuf" | "grpc" | "file"

/** A span, normalised. */
export interface ReceivedSpan {
  readonly traceId: string
  readonly spanId: string
  /** `undefined` for a root span. */
  readonly parentSpanId: string | undefined
  readonly name: string
  /** OTLP kind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number
  readonly startTimeUnixNano: bigint
  readonly endTimeUnixNano: bigint
  readonly attributes: Readonly<Record<string, unknown>>
  readonly events: ReadonlyArray<{ readonly name: string; readonly timeUnixNano: bigint; readonly attributes: Readonly<Record<string, unknown>> }>
  readonly status: { readonly code: "UNSET" | "OK" | "ERROR"; readonly message: string | undefined }
  readonly resource: Readonly<Record<string, unknown>>
  readonly scope: { readonly name: string; readonly version: string | undefined }
  readonly via: Via
}

/** A number data point (sum or gauge). */
export interface NumberPoint {
  readonly attributes: Readonly<Record<string, unknown>>
  readonly value: number
}

/** An explicit-bucket histogram data point. */
export interface HistogramPoint {
  readonly attributes: Readonly<Record<string, unknown>>
  readonly count: number
  readonly sum: number | undefined
  readonly min: number | undefined
  readonly max: number | undefined
  readonly bucketCounts: ReadonlyArray<number>
  readonly explicitBounds: ReadonlyArray<number>
}

/** A metric, normalised. */
export type ReceivedMetric = {
  readonly name: string
  readonly unit: string
  readonly description: string
  readonly resource: Readonly<Record<string, unknown>>
  readonly via: Via
} & (
  | { readonly type: "sum"; readonly isMonotonic: boolean; readonly temporality: number; readonly points: ReadonlyArray<NumberPoint> }
  | { readonly type: "gauge"; readonly points: ReadonlyArray<NumberPoint> }
  | { readonly type: "histogram"; readonly temporality: number; readonly points: ReadonlyArray<HistogramPoint> }
)

// The decoded messages are untyped JSON-like trees; `Node` keeps the walking code readable.
type Node = Record<string, any>

const list = (value: unknown): Array<Node> => (Array.isArray(value) ? value : [])

const hex = (value: unknown): string | undefined => {
  if (value === undefined || value === null) return undefined
  const text = typeof value === "string" ? value.toLowerCase() : Buffer.from(value as Uint8Array).toString("hex")
  return text === "" ? undefined : text
}

/** Nanoseconds from a decimal string, a number, or `{ low, high }` long bits. */
const nanos = (value: unknown): bigint => {
  if (value === undefined || value === null) return 0n
  if (typeof value === "object" && "low" in value && "high" in value) {
    const bits = value as { low: number; high: number }
    return (BigInt(bits.high >>> 0) << 32n) | BigInt(bits.low >>> 0)
  }
  return BigInt(String(value))
}

const num = (value: unknown): number => (value === undefined || value === null ? 0 : typeof value === "object" ? Number(nanos(value)) : Number(value))

/** An OTLP `AnyValue` as a plain value. */
export const anyValue = (value: Node | undefined): unknown => {
  if (value === undefined || value === null) return undefined
  if ("stringValue" in value) return value.stringValue
  if ("boolValue" in value) return value.boolValue
  if ("intValue" in value) return num(value.intValue)
  if ("doubleValue" in value) return Number(value.doubleValue)
  if ("arrayValue" in value) return list(value.arrayValue?.values).map(anyValue)
  if ("kvlistValue" in value) return attributes(value.kvlistValue?.values)
  if ("bytesValue" in value) return typeof value.bytesValue === "string" ? Buffer.from(value.bytesValue, "base64") : Buffer.from(value.bytesValue)
  return undefined
}

/** A list of OTLP `KeyValue`s as a plain object. */
export const attributes = (values: unknown): Record<string, unknown> => {
  const result: Record<string, unknown> = {}
  for (const entry of list(values)) result[String(entry.key)] = anyValue(entry.value)
  return result
}

const statusCodes = ["UNSET", "OK", "ERROR"] as const

const statusCode = (code: unknown): ReceivedSpan["status"]["code"] => {
  if (typeof code === "string" && code.startsWith("STATUS_CODE_")) return code.slice("STATUS_CODE_".length) as ReceivedSpan["status"]["code"]
  return statusCodes[num(code)] ?? "UNSET"
}

/** The spans of an `ExportTraceServiceRequest` (JSON or decoded protobuf). */
export const spansOf = (request: Node, via: Via): Array<ReceivedSpan> =>
  list(request.resourceSpans).flatMap((resourceSpans) => {
    const resource = attributes(resourceSpans.resource?.attributes)
    return list(resourceSpans.scopeSpans).flatMap((scopeSpans) =>
      list(scopeSpans.spans).map((span): ReceivedSpan => ({
        traceId: hex(span.traceId) ?? "",
        spanId: hex(span.spanId) ?? "",
        parentSpanId: hex(span.parentSpanId),
        name: String(span.name ?? ""),
        kind: num(span.kind),
        startTimeUnixNano: nanos(span.startTimeUnixNano),
        endTimeUnixNano: nanos(span.endTimeUnixNano),
        attributes: attributes(span.attributes),
        events: list(span.events).map((event) => ({ name: String(event.name ?? ""), timeUnixNano: nanos(event.timeUnixNano), attributes: attributes(event.attributes) })),
        status: { code: statusCode(span.status?.code), message: span.status?.message === "" ? undefined : span.status?.message },
        resource,
        scope: { name: String(scopeSpans.scope?.name ?? ""), version: scopeSpans.scope?.version === "" ? undefined : scopeSpans.scope?.version },
        via
      }))
    )
  })

/** The values of span attribute `key` over a run's trace file (`<runDir>/trace.json`), span by span, where set. */
export const attributeValues = (runDir: string, key: string): Array<unknown> =>
  spansOf(JSON.parse(fs.readFileSync(path.join(runDir, "trace.json"), "utf8")), "file").flatMap((span) => (key in span.attributes ? [span.attributes[key]] : []))

const numberPoints = (points: unknown): Array<NumberPoint> =>
  list(points).map((point) => ({ attributes: attributes(point.attributes), value: "asInt" in point && point.asInt !== undefined ? num(point.asInt) : num(point.asDouble) }))

const optionalNumber = (value: unknown): number | undefined => (value === undefined || value === null ? undefined : Number(value))

/** The metrics of an `ExportMetricsServiceRequest` (JSON or decoded protobuf). */
export const metricsOf = (request: Node, via: Via): Array<ReceivedMetric> =>
  list(request.resourceMetrics).flatMap((resourceMetrics) => {
    const resource = attributes(resourceMetrics.resource?.attributes)
    return list(resourceMetrics.scopeMetrics).flatMap((scopeMetrics) =>
      list(scopeMetrics.metrics).flatMap((metric): Array<ReceivedMetric> => {
        const base = { name: String(metric.name), unit: String(metric.unit ?? ""), description: String(metric.description ?? ""), resource, via }
        if (metric.sum) return [{ ...base, type: "sum", isMonotonic: metric.sum.isMonotonic === true, temporality: num(metric.sum.aggregationTemporality), points: numberPoints(metric.sum.dataPoints) }]
        if (metric.gauge) return [{ ...base, type: "gauge", points: numberPoints(metric.gauge.dataPoints) }]
        if (metric.histogram) {
          return [{
            ...base,
            type: "histogram",
            temporality: num(metric.histogram.aggregationTemporality),
            points: list(metric.histogram.dataPoints).map((point) => ({
              attributes: attributes(point.attributes),
              count: num(point.count),
              sum: optionalNumber(point.sum),
              min: optionalNumber(point.min),
              max: optionalNumber(point.max),
              bucketCounts: list(point.bucketCounts).map(num),
              explicitBounds: list(point.explicitBounds).map(Number)
            }))
          }]
        }
        return []
      })
    )
  })
