/**
 * The run's log: every `Effect.log*` of the run (the runner's and the stages') as one JSON object
 * per line in `runs/<id>/log.jsonl`, with the trace and span ids of the span it was logged in —
 * so a log line leads to its span in Jaeger or Tempo, and a span to its log lines.
 *
 * @since 0.1.0
 */
import { Cause, Context, Effect, Layer, Logger, References, Tracer } from "effect"
import * as fs from "node:fs"
import * as RunDir from "./RunDir.ts"

/** One line of `log.jsonl`. @category models */
export interface LogLine {
  readonly time: string
  readonly level: string
  readonly message: string
  readonly traceId?: string
  readonly spanId?: string
  /** The stage whose span (or an ancestor's) the line was logged in. */
  readonly stage?: string
  readonly cause?: string
  readonly annotations?: Readonly<Record<string, unknown>>
}

const stageOf = (span: Tracer.AnySpan | undefined): string | undefined => {
  for (let s: Tracer.AnySpan | undefined = span; s !== undefined; s = s._tag === "Span" ? (s.parent._tag === "Some" ? s.parent.value : undefined) : undefined) {
    if (s._tag === "Span") {
      const id = s.attributes.get("crucible.stage.id")
      if (typeof id === "string") return id
    }
  }
  return undefined
}

const loud = new Set(["Fatal", "Error", "Warn"])

/** Annotate a log with this key when a reporter already shows the same fact to the user. */
export const REPORTED = "crucible.reported"

/** The terminal keeps only warnings and errors, and not those the reporters (or a plan) already show. */
export const consoleLogger = Logger.make((options) =>
  loud.has(options.logLevel) && options.fiber.getRef(References.CurrentLogAnnotations)[REPORTED] === undefined ? Logger.defaultLogger.log(options) : undefined
)

/** Every log line to `file`; warnings and errors also to the console. */
export const layer = (file: string): Layer.Layer<never> =>
  Layer.unwrap(
    Effect.map(
      Effect.acquireRelease(Effect.sync(() => RunDir.lineLogOf(file, fs.openSync(file, "a"))), (log) => Effect.sync(log.close)),
      layerTo
    )
  )

/**
 * Every log line to `log` (the runner's `log.jsonl`: a failed write — a full disk — is kept by
 * the log and ends it, never the run); warnings and errors also to the console.
 */
export const layerTo = (log: Pick<RunDir.LineLog, "append">): Layer.Layer<never> =>
  Layer.unwrap(
    Effect.sync(() => {
      const logger = Logger.make((options) => {
        const span = Context.getOption(options.fiber.context, Tracer.ParentSpan)
        const current = span._tag === "Some" ? span.value : undefined
        const stage = stageOf(current)
        const annotations = options.fiber.getRef(References.CurrentLogAnnotations)
        const line: LogLine = {
          time: options.date.toISOString(),
          level: options.logLevel,
          message: Array.isArray(options.message) ? options.message.map(String).join(" ") : String(options.message),
          ...(current === undefined ? {} : { traceId: current.traceId, spanId: current.spanId }),
          ...(stage === undefined ? {} : { stage }),
          ...(options.cause.reasons.length === 0 ? {} : { cause: Cause.pretty(options.cause) }),
          ...(Object.keys(annotations).length === 0 ? {} : { annotations })
        }
        log.append(JSON.stringify(line))
      })
      return Logger.layer([logger, consoleLogger], { mergeWithExisting: false })
    })
  )
