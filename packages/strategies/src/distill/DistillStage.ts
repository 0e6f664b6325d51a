/**
 * `distill`: trains a student to match a teacher (any model, or an ensemble bundle) with
 * Hinton's loss, `α·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1 − α)·CE(y, z_s)` (`KdLoss.ts`),
 * optionally plus a hint loss between named intermediate layers through a learned projection.
 * The student is a fresh architecture (`arch:`, seeded PyTorch init) or starts from the `init`
 * model (e.g. a merge). Optimizer, schedule, epochs, batch size, seed and shift augmentation are
 * those of `train`; early stopping watches a validation split.
 *
 * The teacher's outputs are computed once per (teacher, data, augmentation) and reused
 * (`TeacherOutputs.ts`). Every epoch is checkpointed in the stage's cache folder, so an
 * interrupted distillation resumes from its last checkpoint and a finished one is reused; the
 * per-epoch loss and validation metrics go into the output's metadata
 * (`crucible.distill.history`) and onto the span as `distill.epoch` events.
 *
 * @since 0.1.0
 */
import { Port, Stage } from "@crucible/core"
import * as tf from "@tensorflow/tfjs-core"
import { Effect, Schema } from "effect"
import * as path from "node:path"
import * as Batches from "../data/Batches.ts"
import * as DataSource from "../data/Source.ts"
import * as Classifier from "../ensemble/Classifier.ts"
import { EnsembleError } from "../ensemble/EnsembleError.ts"
import * as Layers from "../models/Layers.ts"
import * as Runnable from "../models/Runnable.ts"
import * as Train from "../train/Train.ts"
import type * as Trainer from "../train/Trainer.ts"
import * as Checkpoints from "../train/EpochCheckpoints.ts"
import * as TrainParams from "../train/TrainParams.ts"
import * as EarlyStopping from "./EarlyStopping.ts"
import * as Hint from "./Hint.ts"
import * as KdLoss from "./KdLoss.ts"
import * as TeacherOutputs from "./TeacherOutputs.ts"


/** Signals the end of training from `onEpoch`; never escapes the stage. */
class EarlyStop extends Schema.TaggedError<EarlyStop>()("EarlyStop", { epoch: Schema.Number }) {}

/** @category stage kinds */
export const DistillKind = Stage.define({
  kind: "distill",
  version: 1,
  description: "Knowledge distillation (Hinton) from a model or an ensemble into a student; checkpointed, resumable.",
  reference: "https://arxiv.org/abs/1503.02531",
  params: Schema.Struct({
    /** The student's architecture; default: the `init` model's. */
    arch: Schema.optional(Runnable.ArchParam),
    ...TrainParams.TrainingFields,
    ...TrainParams.AugmentField,
    /** T, the temperature. */
    temperature: Schema.Finite.check(Schema.isGreaterThan(0)).annotate({ description: "T, the temperature of the soft targets" }).pipe(Stage.withDefault(4)),
    /** α, the weight of the distillation term. */
    alpha: Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 })).annotate({ description: "α, the weight of the distillation term" }).pipe(Stage.withDefault(0.9)),
    early_stopping: Schema.optional(EarlyStopping.EarlyStoppingParam),
    hint: Schema.optional(Hint.HintParam)
  }),
  reads: (params) => [...DataSource.reads(params.data), ...Runnable.archReads(params.arch)],
  inputs: {
    teacher: Port.one(Port.ModelPort, "the teacher: a model or an ensemble"),
    init: Port.optional(Port.ModelPort, "start the student from these weights instead of a fresh initialisation")
  },
  output: Port.ModelPort,
  resources: { backend: true },
  run: Effect.fn("Distill.run")(function* ({ id, params, inputs, resolvePath, cacheDir }) {
    const fail = (detail: string) => new EnsembleError({ reason: "InvalidParams", source: id, detail })
    const seed = params.seed
    const { network, params: start } = yield* Runnable.startingPoint(inputs.init, params.arch, seed, resolvePath)
    const teacher = yield* Classifier.fromModel(inputs.teacher, undefined, resolvePath)
    if (network.outputShape[0] !== teacher.classes) return yield* fail(`the student outputs [${network.outputShape.join(", ")}], the teacher ${teacher.classes} classes`)
    const dataParam = params.data
    const data = yield* DataSource.load(dataParam, params.split, resolvePath)
    const validation = params.validation === undefined ? undefined : yield* DataSource.load(dataParam, params.validation, resolvePath)
    if (params.early_stopping !== undefined && validation === undefined) return yield* fail("early_stopping needs a validation: split")
    const config = TrainParams.config(params)
    const temperature = params.temperature
    const alpha = params.alpha
    const shift = config.augment?.shift ?? 0
    const stepsPerEpoch = Batches.batchCount(data.count, config.batchSize, params.drop_last)
    const augmented: TeacherOutputs.Augmented | undefined = shift === 0 ? undefined : {
      shift, seed, epochs: config.epochs, batchSize: config.batchSize, shuffle: params.shuffle, dropLast: params.drop_last
    }

    const early = params.early_stopping
    const checkpoint = yield* Checkpoints.latest(network, cacheDir)
    const history = [...(checkpoint?.history ?? [])]
    const finished = checkpoint !== undefined && (checkpoint.state.epoch >= config.epochs || (early !== undefined && EarlyStopping.standing(history, early).stop))
    const result = (last: typeof start) =>
      Effect.gen(function* () {
        const best = early !== undefined && early.restore_best ? yield* Checkpoints.readBest(network, cacheDir) : undefined
        const bestEpoch = early === undefined ? undefined : EarlyStopping.standing(history, early).bestEpoch
        return Runnable.toModel(network, best ?? last, `${id} (distill)`, {
          "crucible.distill.history": JSON.stringify(history),
          "crucible.distill.teacher": teacher.source,
          "crucible.distill.data": data.name,
          ...(bestEpoch === undefined ? {} : { "crucible.distill.best_epoch": `${bestEpoch}` })
        })
      })
    if (finished) {
      yield* Stage.event("distill.reused", { epoch: checkpoint.state.epoch, checkpoint: checkpoint.file })
      return yield* result(checkpoint.state.params)
    }
    if (checkpoint !== undefined) yield* Stage.event("distill.resumed", { epoch: checkpoint.state.epoch, checkpoint: checkpoint.file })

    const outputs = yield* TeacherOutputs.cached(teacher, data, path.join(path.dirname(cacheDir), "teacher-outputs"), augmented)
    yield* Stage.event("distill.teacher", { key: outputs.key, reused: outputs.reused })
    const k = teacher.classes
    const probs = KdLoss.temperedProbabilities(outputs.logits, outputs.logits.length / k, k, temperature)
    const hint = params.hint === undefined ? undefined : yield* Hint.prepare(params.hint, network, teacher, data, seed, id)
    // The loss is called once per step, in order: the step number locates an augmented batch's teacher rows.
    let step = (checkpoint?.state.epoch ?? 0) * stepsPerEpoch
    const loss: Trainer.LossFn = (logits, batch) => {
      const n = batch.indices.length
      const rows = new Float32Array(n * k)
      if (augmented === undefined) {
        for (let i = 0; i < n; i++) rows.set(probs.subarray(batch.indices[i]! * k, (batch.indices[i]! + 1) * k), i * k)
      } else {
        const first = Math.floor(step / stepsPerEpoch) * data.count + (step % stepsPerEpoch) * config.batchSize
        rows.set(probs.subarray(first * k, (first + n) * k))
      }
      step++
      const kd = KdLoss.hinton(logits, tf.tensor2d(rows, [n, k]), batch.labels, { temperature, alpha })
      return hint === undefined ? kd : Layers.add(kd, hint.loss(batch))
    }

    const trained = yield* Train.train(network, start, data, config, {
      ...(checkpoint === undefined ? {} : { resume: checkpoint.state }),
      ...(validation === undefined ? {} : { validation }),
      ...(hint === undefined ? {} : { capture: new Set([hint.student]) }),
      loss,
      onEpoch: (report) =>
        Effect.gen(function* () {
          const record = {
            epoch: report.epoch, loss: report.loss, accuracy: report.accuracy, lr: report.lr,
            ...(report.validation === undefined ? {} : { valLoss: report.validation.loss, valAccuracy: report.validation.accuracy })
          }
          history.push(record)
          const standing = early === undefined ? undefined : EarlyStopping.standing(history, early)
          if (standing?.bestEpoch === report.epoch) yield* Checkpoints.saveBest(network, report.state.params, report.epoch, cacheDir)
          yield* Checkpoints.save(network, report.state, cacheDir, history)
          yield* Stage.event("distill.epoch", { ...record, seconds: report.seconds })
          yield* Stage.recordEpoch(id, record)
          yield* Stage.reportProgress({
            stage: id, done: report.epoch, total: config.epochs, unit: "epochs",
            detail: `loss ${report.loss.toFixed(4)}${report.validation === undefined ? "" : ` val ${(100 * report.validation.accuracy).toFixed(1)}%`}`
          })
          if (standing?.stop === true) {
            yield* Stage.event("distill.early_stop", { epoch: report.epoch, bestEpoch: standing.bestEpoch })
            return yield* new EarlyStop({ epoch: report.epoch })
          }
        })
    }).pipe(
      Effect.map((r) => r.state.params),
      Effect.catchTag("EarlyStop", () => Effect.succeed(undefined))
    )
    const last = trained ?? (yield* Checkpoints.latest(network, cacheDir))?.state.params ?? start
    return yield* result(last)
  })
})
