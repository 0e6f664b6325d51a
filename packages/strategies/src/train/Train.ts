/**
 * Supervised training of a network on a dataset: seeded shuffling (and optional shift
 * augmentation), an optimizer with a learning-rate schedule, a callback after every epoch, and
 * resumption from any epoch's state.
 *
 * ```yaml
 * train:
 *   epochs: 10
 *   batchSize: 100
 *   seed: 0
 *   optimizer: { type: adam, lr: 0.001 }
 *   schedule: { type: cosine, warmupSteps: 50 }
 *   augment: { shift: 2 }
 * ```
 *
 * Determinism: epoch `e`'s order and shifts depend only on `(seed, e)` and the learning rate
 * only on the global step, and the state handed to `onEpoch` holds the parameters, the
 * BatchNorm buffers and the optimizer state. So `train` resumed from epoch `k`'s state computes
 * the same steps, on the same backend, as the uninterrupted run.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import { Backend } from "../backend/Backend.ts"
import * as Batches from "../data/Batches.ts"
import type { Dataset } from "../data/Dataset.ts"
import * as Evaluate from "../evaluate/Evaluate.ts"
import type { Metrics } from "../evaluate/Metrics.ts"
import { InputError, type ParamError } from "../models/ModelError.ts"
import type { Network } from "../models/Network.ts"
import * as Params from "../models/Params.ts"
import * as Optimizer from "./Optimizer.ts"
import * as Schedule from "./Schedule.ts"
import * as Trainer from "./Trainer.ts"

const Positive = Schema.Int.check(Schema.isGreaterThan(0))

/** Training hyperparameters, as written under `train:`. @category schemas */
export const TrainConfig = Schema.Struct({
  epochs: Positive,
  batchSize: Positive,
  seed: Schema.Int,
  optimizer: Optimizer.Optimizer,
  /** Default: constant. */
  schedule: Schema.optional(Schedule.Schedule),
  /** Shuffle every epoch (default true). */
  shuffle: Schema.optional(Schema.Boolean),
  /** Drop the last, smaller batch (default false). */
  dropLast: Schema.optional(Schema.Boolean),
  /** Image augmentation: shift by up to `shift` pixels per axis. */
  augment: Schema.optional(Schema.Struct({ shift: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)) }))
})

/** @category models */
export type TrainConfig = typeof TrainConfig.Type

/** Training failed or cannot start. @category errors */
export class TrainError extends Schema.TaggedError<TrainError>()("TrainError", {
  reason: Schema.Literals(["InvalidConfig", "ResumeMismatch", "Diverged", "BackendFailure"]),
  detail: Schema.String,
  epoch: Schema.optional(Schema.Number)
}) {
  override get message() {
    return `training ${this.reason}${this.epoch === undefined ? "" : ` (epoch ${this.epoch})`}: ${this.detail}`
  }
}

/** Everything needed to continue after an epoch. @category models */
export interface TrainState {
  /** Epochs completed. */
  readonly epoch: number
  /** Optimizer steps completed. */
  readonly step: number
  readonly params: Params.ParamSet
  readonly optimizer: Optimizer.OptimizerState
}

/** What an epoch did. */
export interface EpochSummary {
  /** 1-based number of the epoch just completed. */
  readonly epoch: number
  readonly steps: number
  /** The learning rate of the epoch's last step. */
  readonly lr: number
  /** Mean training loss over the epoch's batches (weighted by batch size). */
  readonly loss: number
  readonly accuracy: number
  readonly seconds: number
  readonly validation?: Metrics
}

/** What `onEpoch` receives. */
export interface EpochReport extends EpochSummary {
  readonly state: TrainState
}

/** Options of {@link train}. */
export interface TrainOptions<E, R> {
  /** Called after every epoch (checkpoints, metrics, tracing); its failure stops training. */
  readonly onEpoch?: (report: EpochReport) => Effect.Effect<void, E, R>
  /** Continue from this state instead of the given parameters. */
  readonly resume?: TrainState
  /** Training loss (default: softmax cross-entropy). */
  readonly loss?: Trainer.LossFn
  /** Activations handed to `loss` (see `Trainer.LossInput`). */
  readonly capture?: ReadonlySet<string>
  /** Evaluated after every epoch. */
  readonly validation?: Dataset
}

/** The outcome of {@link train}. */
export interface TrainResult {
  readonly state: TrainState
  readonly history: ReadonlyArray<EpochSummary>
}

// Steps between yields to the Effect scheduler, so training can be interrupted.
const YIELD_EVERY = 8

const checkResume = (network: Network, config: TrainConfig, stepsPerEpoch: number, resume: TrainState): Effect.Effect<void, TrainError> => {
  const fail = (detail: string) => Effect.fail(new TrainError({ reason: "ResumeMismatch", detail, epoch: resume.epoch }))
  if (!Number.isInteger(resume.epoch) || resume.epoch < 0 || resume.epoch > config.epochs) return fail(`resume epoch ${resume.epoch} is outside [0, ${config.epochs}]`)
  if (resume.step !== resume.epoch * stepsPerEpoch) {
    return fail(`the state took ${resume.step} steps in ${resume.epoch} epochs; this configuration takes ${stepsPerEpoch} per epoch (same data, batchSize and dropLast?)`)
  }
  if (resume.optimizer.type !== config.optimizer.type) return fail(`the state is for optimizer "${resume.optimizer.type}", the configuration uses "${config.optimizer.type}"`)
  if (resume.optimizer.step !== resume.step) return fail(`the optimizer state has ${resume.optimizer.step} steps, the training state ${resume.step}`)
  for (const spec of network.params.filter((p) => p.trainable)) {
    for (const slot of Optimizer.slotNames(config.optimizer)) {
      const tensor = resume.optimizer.slots.get(`${spec.name}.${slot}`)
      const size = spec.shape.reduce((a, b) => a * b, 1)
      if (tensor === undefined || tensor.data.length !== size) return fail(`optimizer slot "${spec.name}.${slot}" is missing or has the wrong size`)
    }
  }
  return Effect.void
}

/** Trains `params` of `network` on `data`; see the module doc. */
export const train = <E = never, R = never>(
  network: Network,
  params: Params.ParamSet,
  data: Dataset,
  unchecked: TrainConfig,
  options: TrainOptions<E, R> = {}
): Effect.Effect<TrainResult, TrainError | InputError | ParamError | E, Backend | R> =>
  Effect.gen(function* () {
    // Configurations built in code skip the schema's checks (positive lr, epochs ≥ 1, …): apply them.
    const config = yield* Schema.decodeUnknownEffect(TrainConfig)(unchecked).pipe(
      Effect.mapError((error) => new TrainError({ reason: "InvalidConfig", detail: error.message }))
    )
    const backend = yield* Backend
    yield* Effect.annotateCurrentSpan("crucible.backend", backend.name)
    yield* Evaluate.checkDataset(network, data)
    if (options.validation !== undefined) yield* Evaluate.checkDataset(network, options.validation)
    const unknown = [...(options.capture ?? [])].filter((name) => !network.activationNames.includes(name))
    if (unknown.length > 0) return yield* new InputError({ detail: `unknown activation ${unknown.map((n) => `"${n}"`).join(", ")} in capture` })
    const shift = config.augment?.shift ?? 0
    if (shift > 0 && data.shape.length !== 3) {
      return yield* new TrainError({ reason: "InvalidConfig", detail: `augment.shift needs image samples [C, H, W]; "${data.name}" has [${data.shape.join(", ")}]` })
    }
    const dropLast = config.dropLast ?? false
    const stepsPerEpoch = Batches.batchCount(data.count, config.batchSize, dropLast)
    if (stepsPerEpoch === 0) {
      return yield* new TrainError({ reason: "InvalidConfig", detail: `batchSize ${config.batchSize} with dropLast leaves no batch of the ${data.count} samples` })
    }
    const resume = options.resume
    if (resume !== undefined) yield* checkResume(network, config, stepsPerEpoch, resume)
    const start = yield* Params.validate(network, resume?.params ?? params)
    const schedule = config.schedule ?? { type: "constant" }
    const totalSteps = stepsPerEpoch * config.epochs
    const history: Array<EpochSummary> = []

    const trainer = yield* Effect.acquireRelease(
      Effect.try({
        try: () =>
          Trainer.make(network, start, {
            optimizer: config.optimizer,
            ...(resume === undefined ? {} : { optimizerState: resume.optimizer }),
            ...(options.loss === undefined ? {} : { loss: options.loss }),
            ...(options.capture === undefined ? {} : { capture: options.capture })
          }),
        catch: (cause) => new TrainError({ reason: "BackendFailure", detail: `cannot set up training: ${String(cause)}` })
      }),
      (t) => Effect.sync(() => t.dispose())
    )

    // Device memory is read asynchronously first (webgpu has no synchronous read in Node).
    const fetch = (epoch: number) =>
      Effect.tryPromise({
        try: () => trainer.fetch(),
        catch: (cause) => new TrainError({ reason: "BackendFailure", detail: `cannot read the device: ${cause instanceof Error ? cause.message : String(cause)}`, epoch })
      })

    const runEpoch = (epoch: number) =>
      Effect.gen(function* () {
        const began = performance.now()
        let step = epoch * stepsPerEpoch
        let lr = 0
        for (const batch of Batches.batches(data, { batchSize: config.batchSize, shuffle: config.shuffle ?? true, seed: config.seed, epoch, dropLast, shift })) {
          const rate = Schedule.rate(schedule, config.optimizer.lr, { step, stepsPerEpoch, totalSteps })
          yield* Effect.try({
            try: () => trainer.step(batch.x, batch.y, rate, batch.indices),
            catch: (cause) => new TrainError({ reason: "BackendFailure", detail: cause instanceof Error ? cause.message : String(cause), epoch: epoch + 1 })
          })
          lr = rate
          step++
          if (step % YIELD_EVERY === 0) yield* Effect.yieldNow
        }
        yield* fetch(epoch + 1)
        const totals = trainer.takeTotals()
        const loss = totals.lossSum / totals.samples
        if (!Number.isFinite(loss)) {
          return yield* new TrainError({ reason: "Diverged", detail: `mean training loss is ${loss}; lower the learning rate`, epoch: epoch + 1 })
        }
        const validation = options.validation === undefined ? undefined : yield* Evaluate.evaluateWeights(network, trainer.weights, options.validation)
        yield* Effect.annotateCurrentSpan({ "crucible.train.loss": loss, "crucible.train.lr": lr })
        const summary: EpochSummary = {
          epoch: epoch + 1,
          steps: step,
          lr,
          loss,
          accuracy: totals.correct / totals.samples,
          seconds: (performance.now() - began) / 1000,
          ...(validation === undefined ? {} : { validation })
        }
        return summary
      }).pipe(Effect.withSpan("Train.epoch", { attributes: { "crucible.train.epoch": epoch + 1 } }))

    if (resume === undefined) yield* fetch(0)
    let state: TrainState = resume ?? { epoch: 0, step: 0, params: start, optimizer: trainer.optimizerState() }
    for (let epoch = state.epoch; epoch < config.epochs; epoch++) {
      const summary = yield* runEpoch(epoch)
      history.push(summary)
      state = { epoch: epoch + 1, step: summary.steps, params: trainer.params(), optimizer: trainer.optimizerState() }
      if (options.onEpoch !== undefined) yield* options.onEpoch({ ...summary, state })
    }
    return { state, history }
  }).pipe(Effect.scoped, Effect.withSpan("Train.train", { attributes: { "crucible.train.epochs": unchecked.epochs, "crucible.train.batchSize": unchecked.batchSize } }))
