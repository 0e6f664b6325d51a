/**
 * `train`: trains a model of an architecture on a dataset (seeded: the same params give the same
 * weights), from PyTorch's default initialisation or from an `init` model. Every epoch is
 * checkpointed in the stage's cache folder; a run that was interrupted resumes from its last
 * checkpoint, and a finished one is reused without training again.
 *
 * @since 0.1.0
 */
import { type Model, Port, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as DataSource from "../data/Source.ts"
import * as Network from "../models/Network.ts"
import * as Runnable from "../models/Runnable.ts"
import * as Checkpoints from "./EpochCheckpoints.ts"
import * as TrainParams from "./TrainParams.ts"
import * as Train from "./Train.ts"


/** @category stage kinds */
export const TrainKind = Stage.define({
  kind: "train",
  version: 1,
  description: "Trains a model (seeded, checkpointed each epoch, resumable).",
  params: Schema.Struct({
    /** The architecture; default: the `init` model's. */
    arch: Schema.optional(Runnable.ArchParam),
    ...TrainParams.TrainingFields,
    ...TrainParams.AugmentField
  }),
  reads: (params) => [...DataSource.reads(params.data), ...Runnable.archReads(params.arch)],
  inputs: { init: Port.optional(Port.ModelPort, "start from these weights instead of a fresh initialisation") },
  output: Port.ModelPort,
  resources: { backend: true },
  run: Effect.fn("Train.run")(function* ({ id, params, inputs, resolvePath, cacheDir }) {
    const seed = params.seed
    const { network, params: start } = yield* Runnable.startingPoint(inputs.init, params.arch, seed, resolvePath)
    const dataParam = params.data
    const data = yield* DataSource.load(dataParam, params.split, resolvePath)
    const validation = params.validation === undefined ? undefined : yield* DataSource.load(dataParam, params.validation, resolvePath)
    const config = TrainParams.config(params)
    const checkpoints = yield* Checkpoints.latest(network, cacheDir)
    const history: Array<Record<string, number>> = [...(checkpoints?.history ?? [])]
    if (checkpoints !== undefined && checkpoints.state.epoch >= config.epochs) {
      yield* Stage.event("train.reused", { epoch: checkpoints.state.epoch, checkpoint: checkpoints.file })
      return output(id, network, checkpoints.state.params, history, data.name)
    }
    if (checkpoints !== undefined) yield* Stage.event("train.resumed", { epoch: checkpoints.state.epoch, checkpoint: checkpoints.file })
    const result = yield* Train.train(network, start, data, config, {
      ...(checkpoints === undefined ? {} : { resume: checkpoints.state }),
      ...(validation === undefined ? {} : { validation }),
      onEpoch: (report) =>
        Effect.gen(function* () {
          // The history goes into the output's metadata: no timings there, so outputs are deterministic.
          const record = {
            epoch: report.epoch,
            loss: report.loss,
            accuracy: report.accuracy,
            lr: report.lr,
            ...(report.validation === undefined ? {} : { valLoss: report.validation.loss, valAccuracy: report.validation.accuracy })
          }
          history.push(record)
          yield* Checkpoints.save(network, report.state, cacheDir, history)
          yield* Stage.event("train.epoch", { ...record, seconds: report.seconds })
          yield* Stage.recordEpoch(id, record)
          yield* Stage.reportProgress({
            stage: id, done: report.epoch, total: config.epochs, unit: "epochs",
            detail: `loss ${report.loss.toFixed(4)} acc ${(100 * report.accuracy).toFixed(1)}%${report.validation === undefined ? "" : ` val ${(100 * report.validation.accuracy).toFixed(1)}%`}`
          })
        })
    })
    return output(id, network, result.state.params, history, data.name)
  })
})

const output = (id: string, network: Network.Network, params: Parameters<typeof Runnable.toModel>[1], history: ReadonlyArray<Record<string, number>>, data: string): Model.Model =>
  Runnable.toModel(network, params, `${id} (train)`, { "crucible.train.history": JSON.stringify(history), "crucible.train.data": data })
