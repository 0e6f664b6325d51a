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
 * release — on success, failure or interruption alike — flushes and shuts down the span
 * processors and the meter provider (each bounded by `shutdownTimeoutMillis`), then writes the
 * trace file, so no span that ended is lost. A failed export or trace-file write is logged, never
 * turned into a failure of the run.
 *
 * @since 0.1.0
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import * as Resource from "@effect/opentelemetry/Resource"
import { createNoopMeter } from "@opentelemetry/api"
import { MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
import { BatchSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base"
import { ConfigProvider, Context, Duration, Effect, Layer, Option } from "effect"
import * as Config from "./Config.ts"
import * as Exporters from "./Exporters.ts"
import { Metrics, fromMeter } from "./Metrics.ts"
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
      if (settings.traces !== undefined) {
        const endpoint = settings.traces
        const failures = Exporters.noFailures()
        const exporter = Exporters.watchSpans(yield* Exporters.spanExporter(endpoint), failures)
        processors.push(neverRejecting(new BatchSpanProcessor(exporter, { exportTimeoutMillis: endpoint.timeoutMillis }), failures))
        // Registered before the SDK is built, so it runs after the SDK's release has flushed.
        yield* Effect.addFinalizer(() => reportFailures("spans", endpoint, failures))
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
      return Layer.mergeAll(telemetry, metricsLayer(settings)).pipe(Layer.provideMerge(sdk))
    })
  )

/**
 * A span processor whose flush and shutdown never reject. `NodeSdk` awaits them with
 * `Effect.promise`, where a rejection — an unreachable collector — would become a defect of the
 * layer's release and fail a run whose work succeeded.
 */
const neverRejecting = (processor: SpanProcessor, failures: Exporters.ExportFailures): SpanProcessor => ({
  onStart: (span, context) => processor.onStart(span, context),
  onEnd: (span) => processor.onEnd(span),
  forceFlush: () => processor.forceFlush().catch((error) => Exporters.recordFailure(failures, error)),
  shutdown: () => processor.shutdown().catch((error) => Exporters.recordFailure(failures, error))
})

const reportFailures = (what: string, endpoint: Config.Endpoint, failures: Exporters.ExportFailures): Effect.Effect<void> =>
  failures.count === 0
    ? Effect.void
    : Effect.logWarning(`telemetry: ${what} could not be exported to ${endpoint.url} (${endpoint.protocol}): ${failures.count} failed export(s), last: ${failures.last}`)

const metricsLayer = (settings: Config.Settings): Layer.Layer<Metrics, never, Resource.Resource> =>
  Layer.effect(
    Metrics,
    Effect.gen(function* () {
      if (settings.metrics === undefined) return fromMeter(createNoopMeter())
      const endpoint = settings.metrics
      const resource = yield* Resource.Resource
      const failures = Exporters.noFailures()
      const exporter = Exporters.watchMetrics(yield* Exporters.metricExporter(endpoint), failures)
      yield* Effect.addFinalizer(() => reportFailures("metrics", endpoint, failures))
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
        (provider) =>
          // Shutting down collects and exports one last time.
          Effect.tryPromise(() => provider.shutdown()).pipe(
            Effect.timeoutOption(Duration.millis(settings.shutdownTimeoutMillis)),
            Effect.map((done) => {
              if (Option.isNone(done)) Exporters.recordFailure(failures, `the last export did not finish within ${settings.shutdownTimeoutMillis} ms`)
            }),
            Effect.catch((error) => Effect.sync(() => Exporters.recordFailure(failures, error.cause)))
          )
      )
      return fromMeter(provider.getMeter("crucible", settings.resource["service.version"]))
    })
  )
