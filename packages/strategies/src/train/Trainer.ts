/**
 * The device side of training one network: its parameters as variables, its optimizer state,
 * and one optimizer step on a batch. Everything a step creates is disposed inside the step
 * (the leak test holds `tf.memory().numTensors` constant over 1,000 steps); the variables are
 * released by `dispose`.
 *
 * A step, in train mode: forward with batch statistics, loss, gradients of the trainable
 * parameters (custom gradients, see `models/Layers.ts`), optimizer update, then the BatchNorm
 * buffers as PyTorch updates them: `running ← (1 − m)·running + m·batch` with the unbiased
 * batch variance, `num_batches_tracked += 1`.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs-core"
import * as Forward from "../models/Forward.ts"
import type { BatchStats } from "../models/Layers.ts"
import type { Network, Node } from "../models/Network.ts"
import type { ParamSet } from "../models/Params.ts"
import * as Weights from "../models/Weights.ts"
import * as Loss from "./Loss.ts"
import * as Optimizer from "./Optimizer.ts"

/** What a loss sees of a batch besides the logits. */
export interface LossInput {
  readonly labels: tf.Tensor1D
  /** Dataset indices of the batch's samples (e.g. to look up a teacher's outputs). */
  readonly indices: Int32Array
  /** The activations named in `TrainerOptions.capture` (TF.js layout, on the tape). */
  readonly activations: ReadonlyMap<string, tf.Tensor>
}

/**
 * A training loss over a batch's logits (e.g. distillation: `Loss.softTargetCrossEntropy` with
 * the teacher's probabilities for `indices`). Build it from differentiable ops only
 * (`Loss.ts`, `models/Layers.ts`).
 */
export type LossFn = (logits: tf.Tensor2D, batch: LossInput) => tf.Scalar

/** The default loss: mean softmax cross-entropy against the labels. */
export const crossEntropy: LossFn = (logits, batch) => Loss.softmaxCrossEntropy(logits, batch.labels)

/** Sums over the steps since the last {@link Trainer.takeTotals}. */
export interface Totals {
  readonly samples: number
  /** Σ loss·batch size. */
  readonly lossSum: number
  /** Correctly classified samples (argmax of the logits). */
  readonly correct: number
}

/** @category models */
export interface Trainer {
  readonly network: Network
  /** One optimizer step on a batch (`x` `[n, sampleSize]` in PyTorch layout, labels `y`). */
  readonly step: (x: Float32Array, y: Int32Array, lr: number, indices?: Int32Array) => void
  /** Returns and resets the running sums (reads the device once). */
  readonly takeTotals: () => Totals
  /** The current parameters and buffers (PyTorch layout). */
  readonly params: () => ParamSet
  readonly optimizerState: () => Optimizer.OptimizerState
  /**
   * Copies the running sums, parameters and optimizer slots to the host, so that `takeTotals`,
   * `params` and `optimizerState` read no device memory: needed on `webgpu`, which cannot read
   * synchronously in Node; harmless elsewhere.
   */
  readonly fetch: () => Promise<void>
  /** The live variables (TF.js layout), e.g. for evaluation without a round trip. */
  readonly weights: Weights.TfWeights
  readonly dispose: () => void
}

interface BatchNormBuffers {
  readonly mean: tf.Variable
  readonly variance: tf.Variable
  readonly tracked: tf.Variable
  readonly momentum: number
}

const batchNorms = (nodes: ReadonlyArray<Node>, out: Map<string, number>): Map<string, number> => {
  for (const node of nodes) {
    if (node.kind === "batchnorm") out.set(node.path, node.momentum)
    if (node.kind === "residual") {
      batchNorms(node.body, out)
      batchNorms(node.shortcut ?? [], out)
    }
  }
  return out
}

/** Options of {@link make}. */
export interface TrainerOptions {
  readonly optimizer: Optimizer.Optimizer
  /** Optimizer state to continue from. */
  readonly optimizerState?: Optimizer.OptimizerState
  readonly loss?: LossFn
  /** Activations the loss needs (hints, feature matching): names as in `Network.ts`. */
  readonly capture?: ReadonlySet<string>
}

/** Uploads validated `params` as variables and sets up the optimizer. */
export const make = (network: Network, params: ParamSet, options: TrainerOptions): Trainer => {
  const weights = Weights.upload(network, params, { variables: true }) as Map<string, tf.Variable>
  const trainable = network.params.filter((p) => p.trainable).map((spec) => ({ spec, variable: weights.get(spec.name)! }))
  const byVariable = new Map(trainable.map((t) => [t.variable.name, t.spec.name] as const))
  const optimizer = Optimizer.create(options.optimizer, trainable, options.optimizerState)
  const loss = options.loss ?? crossEntropy
  const buffers = new Map<string, BatchNormBuffers>(
    Array.from(batchNorms(network.nodes, new Map()), ([path, momentum]) => [
      path,
      {
        mean: weights.get(`${path}.running_mean`)!,
        variance: weights.get(`${path}.running_var`)!,
        tracked: weights.get(`${path}.num_batches_tracked`)!,
        momentum
      }
    ])
  )
  const size = network.inputShape.reduce((a, b) => a * b, 1)
  // Running sums stay on the device so a step never waits for a read.
  const lossSum = tf.tidy(() => tf.variable(tf.scalar(0), false))
  const correct = tf.tidy(() => tf.variable(tf.scalar(0), false))
  let samples = 0

  const updateBuffers = (stats: ReadonlyArray<readonly [string, BatchStats]>) => {
    for (const [path, s] of stats) {
      const b = buffers.get(path)
      if (b === undefined) continue
      const unbiased = s.count > 1 ? s.count / (s.count - 1) : 1
      b.mean.assign(tf.add(tf.mul(b.mean, 1 - b.momentum), tf.mul(s.mean, b.momentum)))
      b.variance.assign(tf.add(tf.mul(b.variance, 1 - b.momentum), tf.mul(s.variance, unbiased * b.momentum)))
      b.tracked.assign(tf.add(b.tracked, 1))
    }
  }

  const step = (xb: Float32Array, yb: Int32Array, lr: number, indices?: Int32Array): void => {
    const n = yb.length
    const stats: Array<readonly [string, BatchStats]> = []
    let hits: tf.Tensor | undefined
    try {
      tf.tidy(() => {
        const x = tf.tensor2d(xb, [n, size])
        const labels = tf.tensor1d(yb, "int32")
        const { value, grads } = tf.variableGrads(() => {
          const applied = Forward.apply(network, weights, x, {
            training: true,
            onBatchStats: (path, s) => stats.push([path, s]),
            ...(options.capture === undefined ? {} : { capture: options.capture })
          })
          const logits = applied.output as tf.Tensor2D
          hits = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), "float32")))
          return loss(logits, { labels, indices: indices ?? new Int32Array(0), activations: applied.activations })
        }, trainable.map((t) => t.variable))
        const named = new Map<string, tf.Tensor>()
        for (const [variableName, grad] of Object.entries(grads)) {
          const name = byVariable.get(variableName)
          if (name !== undefined) named.set(name, grad)
        }
        optimizer.apply(named, lr)
        updateBuffers(stats)
        lossSum.assign(tf.add(lossSum, tf.mul(value, n)))
        correct.assign(tf.add(correct, hits!))
      })
      samples += n
    } finally {
      hits?.dispose()
      for (const [, s] of stats) {
        s.mean.dispose()
        s.variance.dispose()
      }
    }
  }

  return {
    network,
    step,
    takeTotals: () => {
      const totals = { samples, lossSum: lossSum.dataSync()[0]!, correct: correct.dataSync()[0]! }
      tf.tidy(() => {
        lossSum.assign(tf.zerosLike(lossSum))
        correct.assign(tf.zerosLike(correct))
      })
      samples = 0
      return totals
    },
    params: () => Weights.download(network, weights),
    optimizerState: () => optimizer.state(),
    fetch: async () => {
      await Promise.all([lossSum, correct, ...weights.values(), ...optimizer.slotTensors()].map((t) => t.data()))
    },
    weights,
    dispose: () => {
      optimizer.dispose()
      Weights.dispose(weights)
      lossSum.dispose()
      correct.dispose()
    }
  }
}
