/**
 * Finished spans as plain, structured-cloneable data, so a span ended in a worker thread can be
 * posted to the main thread and exported there as if it had ended locally. The receiving side
 * gives the span its own resource, so a worker's spans carry the run's `service.name` and
 * `crucible.run.id`.
 *
 * @since 0.1.0
 */
import { createTraceState, type Attributes, type HrTime, type Link, type SpanContext, type SpanKind, type SpanStatus } from "@opentelemetry/api"
import type { Resource } from "@opentelemetry/resources"
import type { ReadableSpan, TimedEvent } from "@opentelemetry/sdk-trace-base"

/** A span context without methods. @category models */
export interface TransferredContext {
  readonly traceId: string
  readonly spanId: string
  readonly traceFlags: number
  readonly isRemote?: boolean
  readonly traceState?: string
}

/** A finished span as data. @category models */
export interface TransferredSpan {
  readonly name: string
  readonly kind: SpanKind
  readonly context: TransferredContext
  readonly parent?: TransferredContext
  readonly startTime: HrTime
  readonly endTime: HrTime
  readonly duration: HrTime
  readonly status: SpanStatus
  readonly attributes: Attributes
  readonly links: ReadonlyArray<{ readonly context: TransferredContext; readonly attributes?: Attributes; readonly droppedAttributesCount?: number }>
  readonly events: ReadonlyArray<TimedEvent>
  readonly scope: { readonly name: string; readonly version?: string; readonly schemaUrl?: string }
  readonly droppedAttributesCount: number
  readonly droppedEventsCount: number
  readonly droppedLinksCount: number
}

const contextToData = (context: SpanContext): TransferredContext => {
  const data: { -readonly [K in keyof TransferredContext]: TransferredContext[K] } = {
    traceId: context.traceId,
    spanId: context.spanId,
    traceFlags: context.traceFlags
  }
  if (context.isRemote !== undefined) data.isRemote = context.isRemote
  const state = context.traceState?.serialize()
  if (state !== undefined && state !== "") data.traceState = state
  return data
}

const contextFromData = (data: TransferredContext): SpanContext => {
  const context: SpanContext = { traceId: data.traceId, spanId: data.spanId, traceFlags: data.traceFlags }
  if (data.isRemote !== undefined) context.isRemote = data.isRemote
  if (data.traceState !== undefined) context.traceState = createTraceState(data.traceState)
  return context
}

/** Copies a finished span into plain data. @category encoding */
export const toData = (span: ReadableSpan): TransferredSpan => {
  const scope: { name: string; version?: string; schemaUrl?: string } = { name: span.instrumentationScope.name }
  if (span.instrumentationScope.version !== undefined) scope.version = span.instrumentationScope.version
  if (span.instrumentationScope.schemaUrl !== undefined) scope.schemaUrl = span.instrumentationScope.schemaUrl
  const data: TransferredSpan = {
    name: span.name,
    kind: span.kind,
    context: contextToData(span.spanContext()),
    startTime: span.startTime,
    endTime: span.endTime,
    duration: span.duration,
    status: span.status,
    attributes: span.attributes,
    links: span.links.map((link) => {
      const copy: { context: TransferredContext; attributes?: Attributes; droppedAttributesCount?: number } = { context: contextToData(link.context) }
      if (link.attributes !== undefined) copy.attributes = link.attributes
      if (link.droppedAttributesCount !== undefined) copy.droppedAttributesCount = link.droppedAttributesCount
      return copy
    }),
    events: span.events,
    scope,
    droppedAttributesCount: span.droppedAttributesCount,
    droppedEventsCount: span.droppedEventsCount,
    droppedLinksCount: span.droppedLinksCount
  }
  return span.parentSpanContext === undefined ? data : { ...data, parent: contextToData(span.parentSpanContext) }
}

/** Rebuilds a span from data, under `resource`, ready for a span processor's `onEnd`. @category decoding */
export const fromData = (data: TransferredSpan, resource: Resource): ReadableSpan => {
  const context = contextFromData(data.context)
  const span: ReadableSpan = {
    name: data.name,
    kind: data.kind,
    spanContext: () => context,
    startTime: data.startTime,
    endTime: data.endTime,
    duration: data.duration,
    status: data.status,
    attributes: data.attributes,
    links: data.links.map((link): Link => {
      const copy: Link = { context: contextFromData(link.context) }
      if (link.attributes !== undefined) copy.attributes = link.attributes
      if (link.droppedAttributesCount !== undefined) copy.droppedAttributesCount = link.droppedAttributesCount
      return copy
    }),
    events: [...data.events],
    ended: true,
    resource,
    instrumentationScope: data.scope,
    droppedAttributesCount: data.droppedAttributesCount,
    droppedEventsCount: data.droppedEventsCount,
    droppedLinksCount: data.droppedLinksCount
  }
  return data.parent === undefined ? span : { ...span, parentSpanContext: contextFromData(data.parent) }
}
