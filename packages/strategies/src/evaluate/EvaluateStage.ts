/**
 * `evaluate`: accuracy, loss, per-class accuracy and expected calibration error (15 bins) of a
 * model — or of an ensemble bundle (`ensemble/Ensemble.ts`), through its fused logits — on a
 * dataset split.
 *
 * @since 0.1.0
 */
import { Port, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as DataSource from "../data/Source.ts"
import * as Classifier from "../ensemble/Classifier.ts"
import * as Ensemble from "../ensemble/Ensemble.ts"
import * as Runnable from "../models/Runnable.ts"
import * as CascadeBundle from "../progressive/CascadeBundle.ts"
import * as Evaluate from "./Evaluate.ts"

/** @category stage kinds */
export const EvaluateKind = Stage.define({
  kind: "evaluate",
  version: 1,
  description: "Accuracy, loss, per-class accuracy and ECE of a model on a dataset split.",
  params: Schema.Struct({
    data: DataSource.dataField(),
    split: DataSource.splitField("test", "the samples to evaluate on"),
    /** Default: the model's `crucible.arch` metadata. */
    arch: Schema.optional(Runnable.ArchParam),
    batch_size: Schema.Int.check(Schema.isGreaterThan(0)).annotate({ description: "samples per forward pass" }).pipe(Stage.withDefault(512))
  }),
  reads: (params) => [...DataSource.reads(params.data), ...Runnable.archReads(params.arch)],
  inputs: { model: Port.one(Port.ModelPort, "the model to evaluate") },
  output: Port.MetricsPort,
  resources: { backend: true },
  run: Effect.fn("Evaluate.run")(function* ({ params, inputs, resolvePath }) {
    const data = yield* DataSource.load(params.data, params.split, resolvePath)
    const metrics = Ensemble.isEnsemble(inputs.model) || CascadeBundle.isCascade(inputs.model)
      ? yield* Classifier.evaluate(yield* Classifier.fromModel(inputs.model, params.arch, resolvePath), data, params.batch_size)
      : yield* Effect.flatMap(Runnable.load(inputs.model, params.arch, resolvePath), ({ network, params: weights }) =>
        Evaluate.evaluate(network, weights, data, { batchSize: params.batch_size }))
    yield* Effect.annotateCurrentSpan({ "crucible.eval.accuracy": metrics.accuracy, "crucible.eval.loss": metrics.loss, "crucible.dataset": data.name })
    return { values: { dataset: data.name, samples: data.count, ...metrics } }
  })
})
