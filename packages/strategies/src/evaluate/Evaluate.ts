/**
 * Evaluation of a network on a labelled dataset: logits computed on the backend in eval mode
 * (BatchNorm running statistics), metrics on the host (`Metrics.ts`).
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import { Backend } from "../backend/Backend.ts"
import { type Dataset, sampleSize } from "../data/Dataset.ts"
import * as Forward from "../models/Forward.ts"
import { InputError, type ParamError } from "../models/ModelError.ts"
import type { Network } from "../models/Network.ts"
import * as Params from "../models/Params.ts"
import * as Weights from "../models/Weights.ts"
import * as Metrics from "./Metrics.ts"

/** Options of {@link evaluate}. */
export interface EvaluateOptions {
  /** Samples per forward batch (default 512). */
  readonly batchSize?: number
}

/** Checks that a dataset fits a classifier network. */
export const checkDataset = (network: Network, dataset: Dataset): Effect.Effect<number, InputError> => {
  const size = network.inputShape.reduce((a, b) => a * b, 1)
  if (sampleSize(dataset) !== size) {
    return Effect.fail(
      new InputError({ detail: `dataset "${dataset.name}" has samples [${dataset.shape.join(", ")}] (${sampleSize(dataset)} values); the architecture takes [${network.inputShape.join(", ")}] (${size})` })
    )
  }
  const classes = network.outputShape.length === 1 ? network.outputShape[0]! : -1
  if (classes < dataset.classes) {
    return Effect.fail(new InputError({ detail: `dataset "${dataset.name}" has ${dataset.classes} classes; the architecture outputs [${network.outputShape.join(", ")}]` }))
  }
  if (dataset.count === 0) return Effect.fail(new InputError({ detail: `dataset "${dataset.name}" is empty` }))
  if (dataset.x.length !== dataset.count * size || dataset.y.length !== dataset.count) {
    return Effect.fail(new InputError({ detail: `dataset "${dataset.name}" holds ${dataset.x.length} values and ${dataset.y.length} labels for ${dataset.count} samples of ${size} values` }))
  }
  return Effect.succeed(classes)
}

/**
 * Logits `[count, classes]` of every sample, over uploaded weights. Each batch is read back
 * asynchronously (webgpu cannot read synchronously in Node).
 */
export const logitsOf = (network: Network, weights: Weights.TfWeights, dataset: Dataset, batchSize = 512): Effect.Effect<Float32Array> =>
  Effect.gen(function* () {
    const size = sampleSize(dataset)
    const classes = network.outputShape[0]!
    const out = new Float32Array(dataset.count * classes)
    for (let start = 0; start < dataset.count; start += batchSize) {
      const end = Math.min(dataset.count, start + batchSize)
      const output = tf.tidy(() => Forward.apply(network, weights, tf.tensor2d(dataset.x.subarray(start * size, end * size), [end - start, size]), { training: false }).output)
      const values = yield* Effect.promise(() => output.data()).pipe(Effect.ensuring(Effect.sync(() => output.dispose())))
      out.set(values as Float32Array, start * classes)
    }
    return out
  })

/** Metrics of uploaded weights on a dataset (used during training, without a round trip). */
export const evaluateWeights = Effect.fn("Evaluate.evaluateWeights")(function* (
  network: Network,
  weights: Weights.TfWeights,
  dataset: Dataset,
  options: EvaluateOptions = {}
): Effect.fn.Return<Metrics.Metrics, InputError, Backend> {
  yield* Backend
  const classes = yield* checkDataset(network, dataset)
  const logits = yield* logitsOf(network, weights, dataset, options.batchSize)
  return Metrics.fromLogits(logits, dataset.y, classes, dataset.classNames)
})

/** Accuracy, loss, per-class accuracy and calibration error of `params` on `dataset`. */
export const evaluate = Effect.fn("Evaluate.evaluate")(function* (
  network: Network,
  params: Params.ParamSet,
  dataset: Dataset,
  options: EvaluateOptions = {}
): Effect.fn.Return<Metrics.Metrics, InputError | ParamError, Backend> {
  const backend = yield* Backend
  yield* Effect.annotateCurrentSpan({ "crucible.backend": backend.name, "crucible.dataset": dataset.name })
  const valid = yield* Params.validate(network, params)
  return yield* Effect.acquireUseRelease(
    Effect.sync(() => Weights.upload(network, valid)),
    (weights) => evaluateWeights(network, weights, dataset, options),
    (weights) => Effect.sync(() => Weights.dispose(weights))
  )
})
