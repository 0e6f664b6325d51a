/**
 * A small traced program shaped like a pipeline run, for the telemetry tests: a parent span
 * with two stage spans (`Effect.fn`), attributes, one span event, metrics, and one stage that
 * fails so its span ends with status ERROR and the error recorded.
 */
import { Clock, Effect, Result, Schema } from "effect"
import { Metrics, timeStage } from "../../src/telemetry/Metrics.ts"

/** The error the failing stage raises. */
export class StageBroke extends Schema.TaggedError<StageBroke>()("StageBroke", { stage: Schema.String }) {
  override get message() {
    return `stage ${this.stage} failed on purpose`
  }
}

/** What the program records, so tests can compare metrics with it exactly. */
export const recorded = {
  bytesRead: 4096 + 1024,
  bytesWritten: 512,
  tensors: 3,
  loss: [1.25, 0.5],
  accuracy: [0.625, 0.875]
} as const

const load = Effect.fn("stage load")(function* (file: string) {
  yield* Effect.annotateCurrentSpan({ "crucible.stage.id": "load", "crucible.stage.kind": "load", "crucible.file": file })
  const span = yield* Effect.currentSpan
  span.event("tensor.read", yield* Clock.currentTimeNanos, { "tensor.name": "layer0.weight", "tensor.bytes": 4096 })
  const metrics = yield* Metrics
  yield* metrics.bytesRead(4096, { stageId: "load", stageKind: "load" })
  yield* metrics.bytesRead(1024, { stageId: "load", stageKind: "load" })
  yield* metrics.tensorsProcessed(recorded.tensors, { stageId: "load", stageKind: "load" })
  for (const [epoch, loss] of recorded.loss.entries()) {
    yield* metrics.epoch({ stage: { stageId: "load" }, epoch: epoch + 1, loss, accuracy: recorded.accuracy[epoch]! })
  }
  return recorded.tensors
}, timeStage({ stageId: "load", stageKind: "load" }))

const merge = Effect.fn("stage merge")(function* (tensors: number) {
  yield* Effect.annotateCurrentSpan({ "crucible.stage.id": "merge", "crucible.stage.kind": "merge/linear", "crucible.tensors": tensors })
  const metrics = yield* Metrics
  yield* metrics.bytesWritten(recorded.bytesWritten, { stageId: "merge" })
  return yield* new StageBroke({ stage: "merge" })
}, timeStage({ stageId: "merge", stageKind: "merge/linear" }))

/** The parent span `run sample` over `stage load` (succeeds) and `stage merge` (fails). */
export const sampleRun = Effect.gen(function* () {
  const tensors = yield* load("models/a.safetensors")
  const merged = yield* Effect.result(merge(tensors))
  return { tensors, mergeFailed: Result.isFailure(merged) }
}).pipe(Effect.withSpan("run sample", { attributes: { "crucible.pipeline.name": "sample" } }))

/** The span names of `sampleRun`. */
export const spanNames = { run: "run sample", load: "stage load", merge: "stage merge" } as const
