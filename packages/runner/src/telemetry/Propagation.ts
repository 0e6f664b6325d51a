/**
 * Trace context across process and thread boundaries, in the W3C Trace Context format: the
 * current span is written into a plain object (`{ traceparent, tracestate? }`) that can travel
 * in `workerData`, a message, or HTTP headers, and on the other side an effect is run as a
 * child of that span, so its spans land in the same trace.
 *
 * @since 0.1.0
 */
import * as OtelTracer from "@effect/opentelemetry/OtelTracer"
import { Effect, Option, type Tracer } from "effect"

/** The carried context: the W3C `traceparent` and, when there is one, `tracestate`. @category models */
export interface TraceCarrier {
  readonly traceparent: string
  readonly tracestate?: string
}

/** A parsed `traceparent`. @category models */
export interface ParentContext {
  readonly traceId: string
  readonly spanId: string
  readonly traceFlags: number
}

const traceparentPattern = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/

/** Formats a version-00 `traceparent`. @category encoding */
export const formatTraceparent = (context: ParentContext): string =>
  `00-${context.traceId}-${context.spanId}-${(context.traceFlags & 0xff).toString(16).padStart(2, "0")}`

/**
 * Parses a `traceparent` as the W3C specification says: lower-case hex, a version other than
 * `ff`, no all-zero ids, and nothing after the flags in version 00 (later versions may append
 * fields). Anything else is `None` — the receiver then starts a new trace.
 *
 * @category decoding
 */
export const parseTraceparent = (header: string): Option.Option<ParentContext> => {
  const match = traceparentPattern.exec(header.trim())
  if (match === null) return Option.none()
  const [, version, traceId, spanId, flags, rest] = match as unknown as [string, string, string, string, string, string | undefined]
  if (version === "ff" || (version === "00" && rest !== undefined)) return Option.none()
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return Option.none()
  return Option.some({ traceId, spanId, traceFlags: parseInt(flags, 16) })
}

/**
 * The current span as a carrier; `None` outside any span. Works with OpenTelemetry spans and
 * with Effect's own, so it can be called whether or not telemetry is installed.
 *
 * @category propagation
 */
export const inject: Effect.Effect<Option.Option<TraceCarrier>> = Effect.option(OtelTracer.currentOtelSpan).pipe(
  Effect.map(Option.map((span) => {
    const context = span.spanContext()
    const traceparent = formatTraceparent(context)
    const tracestate = context.traceState?.serialize()
    return tracestate === undefined || tracestate === "" ? { traceparent } : { traceparent, tracestate }
  }))
)

/** The span a carrier names, as a parent for new spans; `None` when the carrier is absent or invalid. @category propagation */
export const extract = (carrier: TraceCarrier | undefined): Option.Option<Tracer.ExternalSpan> =>
  carrier === undefined
    ? Option.none()
    : Option.map(parseTraceparent(carrier.traceparent), (parent) =>
        OtelTracer.makeExternalSpan({
          traceId: parent.traceId,
          spanId: parent.spanId,
          traceFlags: parent.traceFlags,
          ...(carrier.tracestate === undefined ? {} : { traceState: carrier.tracestate })
        })
      )

/**
 * Runs `self` with the carrier's span as its parent, so the spans it starts join that trace.
 * Without a valid carrier `self` runs unchanged (its spans start a new trace).
 *
 * @category propagation
 */
export const withParent =
  (carrier: TraceCarrier | undefined) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, Exclude<R, Tracer.ParentSpan>> =>
    Option.match(extract(carrier), {
      onNone: () => self as Effect.Effect<A, E, Exclude<R, Tracer.ParentSpan>>,
      onSome: (parent) => Effect.withParentSpan(self, parent)
    })
