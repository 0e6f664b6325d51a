/**
 * The runner's metrics, as a small typed service: bytes read and written, tensors processed,
 * stage durations, the process's resident memory, and training loss/accuracy per epoch.
 *
 * Built on the OpenTelemetry metrics API (an SDK `MeterProvider` per run) rather than Effect's
 * `Metric` bridged by `@effect/opentelemetry`, because: resident memory is an observable gauge,
 * read by the SDK at each collection, which Effect's metrics cannot express without a polling
 * fiber; stage durations need explicit histogram buckets sized for ML stages (milliseconds to
 * an hour), given as instrument advice; and Effect's metric registry is one per runtime, so two
 * runs in one process (tests, a server) would mix their series, where a `MeterProvider` per
 * layer keeps each run's metrics and resource apart.
 *
 * @since 0.1.0
 */
import { createNoopMeter, type Attributes, type Meter } from "@opentelemetry/api"
import { Clock, Context, Effect, Exit, Layer, Option } from "effect"

/** Which stage a measurement belongs to; becomes `crucible.stage.id` / `crucible.stage.kind`. @category models */
export interface StageAttributes {
  readonly stageId?: string
  readonly stageKind?: string
  /** Where the stage ran (`GpuPool.ts`); becomes `crucible.device`. */
  readonly device?: "cpu" | "gpu"
}

/** The data split a training measurement was taken on. @category models */
export type Split = "train" | "validation" | "test"

/** One epoch's outcome. @category models */
export interface EpochRecord {
  readonly stage?: StageAttributes
  readonly epoch: number
  readonly loss: number
  /** A fraction in [0, 1]. */
  readonly accuracy?: number
  /** "train" when absent. */
  readonly split?: Split
}

/** What the runner records. Every method is cheap and never fails. @category models */
export interface MetricsShape {
  /** Adds to `crucible.io.read` (bytes). */
  readonly bytesRead: (bytes: number, stage?: StageAttributes) => Effect.Effect<void>
  /** Adds to `crucible.io.written` (bytes). */
  readonly bytesWritten: (bytes: number, stage?: StageAttributes) => Effect.Effect<void>
  /** Adds to `crucible.tensors.processed`. */
  readonly tensorsProcessed: (count: number, stage?: StageAttributes) => Effect.Effect<void>
  /** Records one stage run in the `crucible.stage.duration` histogram (seconds). */
  readonly stageDuration: (seconds: number, stage: StageAttributes, outcome?: "success" | "failure") => Effect.Effect<void>
  /**
   * Sets the `crucible.training.loss` / `.accuracy` / `.epoch` gauges, and adds an `epoch` event
   * to the current span: gauges are sampled at each export, the span event keeps every epoch.
   */
  readonly epoch: (record: EpochRecord) => Effect.Effect<void>
}

/** The metrics service. @category services */
export class Metrics extends Context.Service<Metrics, MetricsShape>()("crucible/runner/telemetry/Metrics") {
  /** Metrics that record nothing, for code run without telemetry. */
  static readonly layerNoop: Layer.Layer<Metrics> = Layer.sync(Metrics, () => fromMeter(createNoopMeter()))
}

/** The instrument names, for dashboards and tests. @category constants */
export const names = {
  bytesRead: "crucible.io.read",
  bytesWritten: "crucible.io.written",
  tensorsProcessed: "crucible.tensors.processed",
  stageDuration: "crucible.stage.duration",
  residentMemory: "crucible.process.rss",
  loss: "crucible.training.loss",
  accuracy: "crucible.training.accuracy",
  epoch: "crucible.training.epoch"
} as const

/** Histogram buckets for stage durations, in seconds: a 5 ms tensor copy to an hour-long training stage. @category constants */
export const stageDurationBuckets: ReadonlyArray<number> = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600]

const stageAttributes = (stage: StageAttributes | undefined): Attributes => {
  const attributes: Attributes = {}
  if (stage?.stageId !== undefined) attributes["crucible.stage.id"] = stage.stageId
  if (stage?.stageKind !== undefined) attributes["crucible.stage.kind"] = stage.stageKind
  if (stage?.device !== undefined) attributes["crucible.device"] = stage.device
  return attributes
}

/** The service over an OpenTelemetry meter; registers the resident-memory gauge on it. @category constructors */
export const fromMeter = (meter: Meter): MetricsShape => {
  const read = meter.createCounter(names.bytesRead, { unit: "By", description: "Bytes of tensor data read" })
  const written = meter.createCounter(names.bytesWritten, { unit: "By", description: "Bytes of tensor data written" })
  const tensors = meter.createCounter(names.tensorsProcessed, { unit: "{tensor}", description: "Tensors processed by stages" })
  const duration = meter.createHistogram(names.stageDuration, {
    unit: "s",
    description: "Wall time of one stage run",
    advice: { explicitBucketBoundaries: [...stageDurationBuckets] }
  })
  const loss = meter.createGauge(names.loss, { unit: "1", description: "Loss at the end of the latest epoch" })
  const accuracy = meter.createGauge(names.accuracy, { unit: "1", description: "Accuracy at the end of the latest epoch" })
  const epoch = meter.createGauge(names.epoch, { unit: "{epoch}", description: "The latest finished epoch" })
  meter
    .createObservableGauge(names.residentMemory, { unit: "By", description: "Resident set size of the runner process" })
    .addCallback((result) => result.observe(process.memoryUsage.rss()))

  return {
    bytesRead: (bytes, stage) => Effect.sync(() => read.add(bytes, stageAttributes(stage))),
    bytesWritten: (bytes, stage) => Effect.sync(() => written.add(bytes, stageAttributes(stage))),
    tensorsProcessed: (count, stage) => Effect.sync(() => tensors.add(count, stageAttributes(stage))),
    stageDuration: (seconds, stage, outcome = "success") =>
      Effect.sync(() => duration.record(seconds, { ...stageAttributes(stage), "crucible.stage.outcome": outcome })),
    epoch: (record) =>
      Effect.gen(function* () {
        const split = record.split ?? "train"
        const attributes = { ...stageAttributes(record.stage), "crucible.split": split }
        loss.record(record.loss, attributes)
        if (record.accuracy !== undefined) accuracy.record(record.accuracy, attributes)
        epoch.record(record.epoch, stageAttributes(record.stage))
        const span = yield* Effect.option(Effect.currentSpan)
        if (Option.isNone(span)) return
        const event: Record<string, unknown> = { "crucible.epoch": record.epoch, "crucible.split": split, "crucible.loss": record.loss }
        if (record.accuracy !== undefined) event["crucible.accuracy"] = record.accuracy
        span.value.event("epoch", yield* Clock.currentTimeNanos, event)
      })
  }
}

/**
 * Times `self` and records it in `crucible.stage.duration` with its outcome (an interruption
 * counts as a failure).
 *
 * @category combinators
 */
export const timeStage =
  (stage: StageAttributes) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R | Metrics> =>
    Effect.gen(function* () {
      const metrics = yield* Metrics
      const start = yield* Clock.currentTimeNanos
      return yield* self.pipe(
        Effect.onExit((exit) =>
          Effect.flatMap(Clock.currentTimeNanos, (end) =>
            metrics.stageDuration(Number(end - start) / 1e9, stage, Exit.isSuccess(exit) ? "success" : "failure")
          )
        )
      )
    })
