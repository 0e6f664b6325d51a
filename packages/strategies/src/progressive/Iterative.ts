/**
 * `progressive/iterative`: iterative fusion. Models are merged into an accumulator one at a
 * time with a `merge/*` method; after each step the candidate is evaluated on a validation split
 * (`val` by default, carved from train) and the step is kept only if the validation metric
 * strictly improves. The path taken — every step, its score and whether it was kept — is
 * recorded as `progressive.step` span events and in the output's metadata `crucible.progressive`.
 *
 * Each step merges `[accumulator, next]` (the base, when given, is passed to methods that take
 * one). For `merge/linear` without explicit weights the weights are `[k, 1]`, `k` the number of
 * models already in the accumulator, so the accumulator stays the uniform average of the kept
 * models; other methods get `with:` as written.
 *
 * @since 0.1.0
 */
import { Port, Stage } from "@crucible/core"
import type { Model } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as DataSource from "../data/Source.ts"
import * as Evaluate from "../evaluate/Evaluate.ts"
import { MergeKinds } from "../merge/Kinds.ts"
import * as Runnable from "../models/Runnable.ts"

/** The merge methods a step may use: every merge kind but those that need per-model statistics or take one model (besides a base). */
const { "merge/fisher": _fisher, "merge/regmean": _regmean, "merge/passthrough": _passthrough, "merge/nearswap": _nearswap, "merge/arcee-fusion": _arceeFusion, ...stepMethods } = MergeKinds
export const Methods = stepMethods

const MethodName = Schema.Literals(Object.keys(Methods) as Array<keyof typeof Methods>)
const Metric = Schema.Literals(["accuracy", "loss"])

/** The metadata key of the path taken. */
export const PATH_KEY = "crucible.progressive"

/** A step cannot be set up or run. @category errors */
export class ProgressiveError extends Schema.TaggedError<ProgressiveError>()("ProgressiveError", {
  stage: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `stage "${this.stage}": ${this.detail}`
  }
}

/** @category stage kinds */
export const IterativeKind = Stage.define({
  kind: "progressive/iterative",
  version: 1,
  description: "Iterative fusion: merge models into an accumulator one at a time, keeping a step only if validation improves.",
  params: Schema.Struct({
    /** A merge kind. */
    method: MethodName.annotate({ description: "the merge kind" }).pipe(Stage.withDefault<typeof MethodName>("merge/linear")),
    /** The method's parameters. */
    with: Schema.optional(Schema.Record(Schema.String, Schema.Unknown)),
    data: DataSource.dataField(),
    split: DataSource.splitField("val", "the validation split"),
    /** Higher `accuracy` or lower `loss`. */
    metric: Metric.annotate({ description: "higher accuracy or lower loss is better" }).pipe(Stage.withDefault<typeof Metric>("accuracy"))
  }),
  reads: (params) => DataSource.reads(params.data),
  inputs: {
    models: Port.many(Port.ModelPort, { min: 2, description: "merged in this order; the first starts the accumulator" }),
    base: Port.optional(Port.ModelPort, "for methods that take a base (task arithmetic, TIES, …)")
  },
  output: Port.ModelPort,
  resources: { backend: true },
  run: Effect.fn("Iterative.run")(function* (context) {
    const { id, params, inputs, resolvePath } = context
    const methodName = params.method
    const method = Methods[methodName] as unknown as Stage.AnyStageKind
    const data = yield* DataSource.load(params.data, params.split, resolvePath)
    const metric = params.metric
    // Every accumulator is materialised: later steps read plain tensors, not a chain of lazy merges.
    const materialise = (model: Model.Model, label: string) =>
      Effect.gen(function* () {
        const { network, params: weights } = yield* Runnable.load(model, undefined, resolvePath)
        const metrics = yield* Evaluate.evaluate(network, weights, data)
        return { model: Runnable.toModel(network, weights, label), score: metric === "accuracy" ? metrics.accuracy : -metrics.loss, metrics }
      })
    let acc = yield* materialise(inputs.models[0]!, `${id} (progressive/iterative)`)
    let count = 1
    const path: Array<Record<string, unknown>> = [{ step: 0, index: 0, source: inputs.models[0]!.source, score: acc.score, kept: true, accumulatorScore: acc.score }]
    yield* Stage.event("progressive.step", path[0]!)
    for (let i = 1; i < inputs.models.length; i++) {
      const raw = { ...(methodName === "merge/linear" && params.with?.weights === undefined ? { weights: [count, 1] } : {}), ...params.with }
      const decoded = yield* Schema.decodeUnknownEffect(method.params)(raw).pipe(
        Effect.mapError((e) => new ProgressiveError({ stage: id, detail: `with: is not valid for ${methodName}: ${e.message}` }))
      )
      const merged = yield* (method.run({
        ...context,
        id: `${id}.step${i}`,
        kind: methodName,
        params: decoded,
        inputs: { models: [acc.model, inputs.models[i]!], ...(inputs.base === undefined ? {} : { base: inputs.base }) }
      }) as Effect.Effect<Model.Model, Stage.StageError, never>).pipe(Effect.mapError((e) => new ProgressiveError({ stage: id, detail: `step ${i} (${methodName}): ${e.message}` })))
      const candidate = yield* materialise(merged, acc.model.source)
      const kept = candidate.score > acc.score
      if (kept) {
        acc = candidate
        count++
      }
      const step = { step: i, index: i, source: inputs.models[i]!.source, score: candidate.score, kept, accumulatorScore: acc.score }
      path.push(step)
      yield* Stage.event("progressive.step", step)
    }
    const kept = path.filter((s) => s.kept).map((s) => s.index)
    yield* Effect.annotateCurrentSpan({ "crucible.progressive.kept": kept.join(","), "crucible.progressive.score": acc.score })
    return { ...acc.model, metadata: { ...acc.model.metadata, [PATH_KEY]: JSON.stringify({ method: methodName, metric, data: data.name, kept, path }) } }
  })
})

