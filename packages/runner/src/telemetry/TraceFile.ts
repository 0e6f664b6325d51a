/**
 * The run's trace as a file: every ended span is kept in memory and written at shutdown as one
 * OTLP/JSON `ExportTraceServiceRequest` — the body an OTLP/HTTP receiver accepts with
 * `Content-Type: application/json`, so the file can be replayed into Jaeger or Tempo with
 * `curl --data-binary @trace.json`. The write is atomic (temporary file, fsync, rename): a
 * reader never sees half a trace.
 *
 * Spans are kept, not streamed, because the file must be one JSON document; a run emits a
 * handful of spans per stage, so memory stays small.
 *
 * @since 0.1.0
 */
import * as AtomicFile from "@crucible/core/io/AtomicFile"
import { describe, type IoError } from "@crucible/core/io/IoError"
import { JsonTraceSerializer } from "@opentelemetry/otlp-transformer"
import type { ReadableSpan, SpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { TraceFileUnwritable } from "./TelemetryError.ts"

/** A span processor that keeps every span that ends, in end order. @category models */
export class SpanCollector implements SpanProcessor {
  readonly #spans: Array<ReadableSpan> = []

  /** The spans collected so far. */
  get spans(): ReadonlyArray<ReadableSpan> {
    return this.#spans
  }

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    this.#spans.push(span)
  }

  forceFlush(): Promise<void> {
    return Promise.resolve()
  }

  shutdown(): Promise<void> {
    return Promise.resolve()
  }
}

/** Encodes spans as an OTLP/JSON `ExportTraceServiceRequest`. @category encoding */
export const encode = (spans: ReadonlyArray<ReadableSpan>): Uint8Array =>
  JsonTraceSerializer.serializeRequest([...spans]) ?? new TextEncoder().encode(`{"resourceSpans":[]}`)

/** Writes spans to `file` atomically. @category writing */
export const write = (file: string, spans: ReadonlyArray<ReadableSpan>): Effect.Effect<void, IoError> =>
  AtomicFile.writeWhole(file, encode(spans))

/**
 * Checks, before any work, that `file` can be written at the end: its directory exists (it is
 * created if missing) and is writable, and the path is not a directory.
 *
 * @category writing
 */
export const checkWritable = (file: string): Effect.Effect<void, TraceFileUnwritable> =>
  Effect.try({
    try: () => {
      const directory = path.dirname(path.resolve(file))
      fs.mkdirSync(directory, { recursive: true })
      fs.accessSync(directory, fs.constants.W_OK)
      if (fs.existsSync(file) && fs.statSync(file).isDirectory()) throw new Error("the path is a directory")
    },
    catch: (cause) => new TraceFileUnwritable({ file, detail: describe(cause) })
  })
