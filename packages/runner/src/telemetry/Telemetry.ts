/**
 * Installs OpenTelemetry for a run: every `Effect.withSpan` / `Effect.fn` span becomes an OTel
 * span (through `@effect/opentelemetry`'s `NodeSdk`), exported over OTLP where the options or
 * the standard `OTEL_*` variables say, and — when a trace file is asked for — also collected
 * and written at shutdown as OTLP JSON. Metrics go through a `MeterProvider` of the same
 * resource (see `Metrics.ts`).
 *
 * ```ts
 * const main = runPipeline.pipe(Effect.provide(Telemetry.layer({ runId, traceFile: "run/trace.json" })))
 * ```
 *
 * Provide the layer outermost: spans started outside it are not OpenTelemetry spans. Its
 * release — on success, failure or interruption alike — shuts down the span processors and the
 * meter provider at once (each exports what it still holds), waits for them together for at most
 * `shutdownTimeoutMillis`, then writes the trace file, so no span that ended is lost from it. A
 * failed export is one warning for the whole run, naming the endpoint; neither it nor a failed
 * trace-file write fails the run.
 *
 * @since 0.1.0
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import * as Resource from "@effect/opentelemetry/Resource"
import { createNoopMeter } from "@opentelemetry/api"
import { MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import { BatchSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base"
import { ConfigProvider, Context, Duration, Effect, Layer } from "effect"
import * as Config from "./Config.ts"
import * as Exporters from "./Exporters.ts"
import { Metrics, fromMeter } from "./Metrics.ts"
import * as Shutdown from "./Shutdown.ts"
import * as SpanTransfer from "./SpanTransfer.ts"
import type { TelemetryError } from "./TelemetryError.ts"
import * as TraceFile from "./TraceFile.ts"

/** Options of `layer`; see `Config.TelemetryOptions`. @category models */
export type TelemetryOptions = Config.TelemetryOptions

/** The installed telemetry of a run. @category services */
export class Telemetry extends Context.Service<Telemetry, {
  /** Where spans and metrics go, as resolved from the options and the environment. */
  readonly settings: Config.Settings
  /**
   * Exports spans that ended elsewhere — in a worker thread — through this run's span
   * processors (and into its trace file), under this run's resource.
   */
  readonly adopt: (spans: ReadonlyArray<SpanTransfer.TransferredSpan>) => Effect.Effect<void>
}>()("crucible/runner/telemetry/Telemetry") {}

/**
 * The telemetry layer. Fails with `InvalidSetting` when an option or `OTEL_*` variable is
 * unusable, or `TraceFileUnwritable` when the trace file's directory cannot be written —
 * before any work runs.
 *
 * @category layers
 */
export const layer = (options: TelemetryOptions = {}): Layer.Layer<Telemetry | Metrics | Resource.Resource, TelemetryError> =>
  Layer.unwrap(
    Effect.gen(function* () {
      const env = options.env ?? process.env
      const settings = yield* Config.resolve(options, env)
      const processors: Array<SpanProcessor> = []
      const shutdown = Shutdown.make(settings.shutdownTimeoutMillis)
      const exports: Array<Exporters.SignalExport> = []
      // Registered before the SDK is built, so it runs after every signal's release.
      yield* Effect.addFinalizer(() => reportFailures(shutdown, exports))
      if (settings.traces !== undefined) {
        const endpoint = settings.traces
        const failures = Exporters.noFailures()
        exports.push({ signal: "traces", endpoint, failures })
        const exporter = Exporters.watchSpans(yield* Exporters.spanExporter(endpoint), failures)
        const batch = new BatchSpanProcessor(exporter, { exportTimeoutMillis: endpoint.timeoutMillis })
        shutdown.add("traces", () => batch.shutdown())
        processors.push(joiningShutdown(batch, shutdown))
      }
      if (settings.traceFile !== undefined) {
        const file = settings.traceFile
        yield* TraceFile.checkWritable(file)
        const collector = new TraceFile.SpanCollector()
        processors.push(collector)
        yield* Effect.addFinalizer(() =>
          TraceFile.write(file, collector.spans).pipe(
            Effect.catch((error) => Effect.logError(`telemetry: the trace file was not written: ${error.message}`))
          )
        )
      }

      const { "service.name": serviceName, "service.version": serviceVersion, ...attributes } = settings.resource
      const sdk = NodeSdk.layer(() => ({
        spanProcessor: processors,
        resource: { serviceName: serviceName ?? Config.defaultServiceName, ...(serviceVersion === undefined ? {} : { serviceVersion }), attributes },
        shutdownTimeout: Duration.millis(settings.shutdownTimeoutMillis)
      })).pipe(
        // NodeSdk reads OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES itself: make it read the same record.
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ ...env })))
      )

      const telemetry = Layer.effect(
        Telemetry,
        Effect.gen(function* () {
          const resource = yield* Resource.Resource
          return {
            settings,
            adopt: (spans) =>
              Effect.sync(() => {
                for (const data of spans) {
                  const span = SpanTransfer.fromData(data, resource)
                  for (const processor of processors) processor.onEnd(span)
                }
              })
          }
        })
      )
      return Layer.mergeAll(telemetry, metricsLayer(settings, shutdown, exports)).pipe(Layer.provideMerge(sdk))
    })
  )

/**
 * The exporting span processor as `NodeSdk` sees it: its flush and shutdown, which the SDK's
 * release calls, join the run's one bounded shutdown of every signal (which never rejects: a
 * rejection would become a defect of the release and fail a run whose work succeeded).
 */
const joiningShutdown = (processor: SpanProcessor, shutdown: Shutdown.Shutdown): SpanProcessor => ({
  onStart: (span, context) => processor.onStart(span, context),
  onEnd: (span) => processor.onEnd(span),
  forceFlush: () => shutdown.run().then(() => undefined),
  shutdown: () => shutdown.run().then(() => undefined)
})

/** Waits for the shutdown (started by whichever release came first), then warns once if any export failed. */
const reportFailures = (shutdown: Shutdown.Shutdown, exports: ReadonlyArray<Exporters.SignalExport>): Effect.Effect<void> =>
  Effect.gen(function* () {
    const outcomes = yield* Effect.promise(() => shutdown.run())
    for (const outcome of outcomes) {
      const failures = exports.find((e) => e.signal === outcome.signal)?.failures
      if (failures === undefined) continue
      if (outcome.result === "timed out") Exporters.recordFailure(failures, `the last export did not finish within ${outcome.afterMillis} ms`)
      // A failed export was counted as it failed; a shutdown that failed without one is counted here.
      else if (outcome.result === "failed" && failures.count === 0) Exporters.recordFailure(failures, outcome.error)
    }
    const line = Exporters.failureLine(exports)
    if (line !== undefined) yield* Effect.logWarning(line)
  })

const metricsLayer = (
  settings: Config.Settings,
  shutdown: Shutdown.Shutdown,
  exports: Array<Exporters.SignalExport>
): Layer.Layer<Metrics, never, Resource.Resource> =>
  Layer.effect(
    Metrics,
    Effect.gen(function* () {
      if (settings.metrics === undefined) return fromMeter(createNoopMeter())
      const endpoint = settings.metrics
      const resource = yield* Resource.Resource
      const failures = Exporters.noFailures()
      exports.push({ signal: "metrics", endpoint, failures })
      const exporter = Exporters.watchMetrics(yield* Exporters.metricExporter(endpoint), failures)
      const provider = yield* Effect.acquireRelease(
        Effect.sync(() =>
          new MeterProvider({
            resource,
            readers: [
              new PeriodicExportingMetricReader({
                exporter,
                exportIntervalMillis: settings.metricIntervalMillis,
                exportTimeoutMillis: Math.min(endpoint.timeoutMillis, settings.metricIntervalMillis)
              })
            ]
          })
        ),
        // Released before the SDK: this starts every signal's shutdown, spans included.
        () => Effect.promise(() => shutdown.run())
      )
      // Shutting down collects and exports one last time.
      shutdown.add("metrics", () => provider.shutdown())
      return fromMeter(provider.getMeter("crucible", settings.resource["service.version"]))
    })
  )
