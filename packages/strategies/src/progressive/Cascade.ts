/**
 * `progressive/cascade`: progressive fusion in series. The `first` model (kept frozen) is run once
 * over the data up to its activation `layer` (default: its output); a second model of `arch:` is
 * trained on those features with `train`'s loop and parameters. When the second model's input
 * size differs from the features', a dense adapter (features → its input size) is prepended and
 * trained with it. The output is a cascade bundle (`CascadeBundle.ts`): `evaluate` and `distill`
 * run it as one classifier, `save` writes it as one file.
 *
 * No gradient flows into the first model, so its features are computed once, in evaluation mode
 * (BatchNorm running statistics), exactly as the bundle computes them at inference. Every epoch
 * is checkpointed in the stage's cache folder: an interrupted run resumes, a finished one is
 * reused.
 *
 * @since 0.1.0
 */
import { type Model, Port, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"
import type { Dataset } from "../data/Dataset.ts"
import * as DataSource from "../data/Source.ts"
import * as Ensemble from "../ensemble/Ensemble.ts"
import type * as Arch from "../models/Arch.ts"
import * as Forward from "../models/Forward.ts"
import * as Init from "../models/Init.ts"
import * as Network from "../models/Network.ts"
import type { ParamSet } from "../models/Params.ts"
import * as Runnable from "../models/Runnable.ts"
import * as TrainParams from "../train/TrainParams.ts"
import * as Checkpoints from "../train/EpochCheckpoints.ts"
import * as Train from "../train/Train.ts"
import * as CascadeBundle from "./CascadeBundle.ts"


/** An architecture's layers as `sequential` layers (an MLP's widths become dense, norm, relu). */
export const sequentialLayers = (arch: Arch.Arch): ReadonlyArray<Arch.Layer> => {
  if (arch.type === "sequential") return arch.layers
  const layers: Array<Arch.Layer> = []
  for (let i = 1; i < arch.layers.length; i++) {
    layers.push({ type: "dense", out: arch.layers[i]!, ...(arch.bias === undefined ? {} : { bias: arch.bias }) })
    if (i + 1 < arch.layers.length) {
      if (arch.norm !== undefined) layers.push({ type: arch.norm })
      layers.push({ type: "relu" })
    }
  }
  return layers
}

/** `arch` behind a dense adapter from `features` values to its input size. */
export const withAdapter = (arch: Arch.Arch, inputSize: number, features: number): Arch.Arch => ({
  type: "sequential",
  input: [features],
  layers: [{ type: "dense", out: inputSize }, ...sequentialLayers(arch)]
})

/**
 * `params` of `network` carried into `adapted` (the same layers behind an adapter): parameters
 * correspond in `state_dict` order after the adapter's; the adapter keeps its values from `start`.
 */
export const shiftParams = (network: Network.Network, params: ParamSet, adapted: Network.Network, start: ParamSet): ParamSet => {
  const out = new Map(start)
  const targets = adapted.params.filter((p) => !p.name.startsWith("layers.0."))
  network.params.forEach((spec, i) => out.set(targets[i]!.name, params.get(spec.name)!))
  return out
}

/** @category stage kinds */
export const CascadeKind = Stage.define({
  kind: "progressive/cascade",
  version: 1,
  description: "Cascade: a frozen model's output or hidden layer feeds a second model (through a trained adapter when sizes differ).",
  params: Schema.Struct({
    /** The first model's activation fed forward (e.g. `act.1`, `layers.3`), or `output`. */
    layer: Schema.String.annotate({ description: "the first model's activation fed forward (e.g. act.1), or output" }).pipe(Stage.withDefault(CascadeBundle.OUTPUT)),
    /** The second model's architecture; default: the `init` model's. */
    arch: Schema.optional(Runnable.ArchParam),
    ...TrainParams.TrainingFields
  }),
  reads: (params) => [...DataSource.reads(params.data), ...Runnable.archReads(params.arch)],
  inputs: {
    first: Port.one(Port.ModelPort, "the first model (frozen)"),
    init: Port.optional(Port.ModelPort, "start the second model from these weights instead of a fresh initialisation")
  },
  output: Port.ModelPort,
  resources: { backend: true },
  run: Effect.fn("Cascade.run")(function* ({ id, params, inputs, resolvePath, cacheDir }) {
    const fail = (detail: string) => new CascadeBundle.CascadeError({ reason: "InvalidParams", source: id, detail })
    if (CascadeBundle.isCascade(inputs.first) || Ensemble.isEnsemble(inputs.first)) return yield* fail(`first: ${inputs.first.source} is a bundle; give a plain model`)
    const first = yield* Runnable.load(inputs.first, undefined, resolvePath)
    const layer = params.layer
    const features = Network.sampleSize(yield* CascadeBundle.featureShape(first.network, layer, id))

    const arch = yield* Runnable.archFor(inputs.init, params.arch, resolvePath)
    const second = yield* Network.resolve(arch)
    const inputSize = Network.sampleSize(second.inputShape)
    const adapter = inputSize !== features
    if (adapter && second.inputShape.length !== 1) {
      return yield* new CascadeBundle.CascadeError({
        reason: "ShapeMismatch", source: id,
        detail: `"${layer}" has ${features} values per sample; the second model takes [${second.inputShape.join(", ")}]: an adapter can only feed a flat input`
      })
    }
    const network = adapter ? yield* Network.resolve(withAdapter(arch, inputSize, features)) : second
    const seed = params.seed
    const fresh = Init.initNetwork(network, seed)
    const initParams = inputs.init === undefined ? undefined : (yield* Runnable.load(inputs.init, params.arch, resolvePath)).params
    const start = initParams === undefined ? fresh : adapter ? shiftParams(second, initParams, network, fresh) : initParams

    const dataParam = params.data
    const featuresOf = (data: Dataset) =>
      Effect.map(
        Forward.forward(first.network, first.params, { shape: [data.count, ...data.shape], data: data.x }, { capture: layer === CascadeBundle.OUTPUT ? [] : [layer], batchSize: 512 }),
        (r): Dataset => ({
          ...data,
          name: `${data.name} → ${inputs.first.source}:${layer}`,
          shape: [features],
          x: (layer === CascadeBundle.OUTPUT ? r.output : r.activations.get(layer)!).data
        })
      )
    const data = yield* Effect.flatMap(DataSource.load(dataParam, params.split, resolvePath), featuresOf)
    const validation = params.validation === undefined ? undefined : yield* Effect.flatMap(DataSource.load(dataParam, params.validation, resolvePath), featuresOf)
    yield* Stage.event("cascade.features", { layer, features, samples: data.count, adapter })
    const config = TrainParams.config(params)

    const output = (trained: ParamSet, history: ReadonlyArray<Record<string, number>>): Effect.Effect<Model.Model, CascadeBundle.CascadeError> =>
      CascadeBundle.make(
        `${id} (progressive/cascade)`,
        [Runnable.toModel(first.network, first.params, inputs.first.source), Runnable.toModel(network, trained, `${id} stage 1`)],
        { layer, adapter },
        { "crucible.cascade.history": JSON.stringify(history), "crucible.cascade.data": data.name }
      )
    const checkpoint = yield* Checkpoints.latest(network, cacheDir)
    const history: Array<Record<string, number>> = [...(checkpoint?.history ?? [])]
    if (checkpoint !== undefined && checkpoint.state.epoch >= config.epochs) {
      yield* Stage.event("cascade.reused", { epoch: checkpoint.state.epoch, checkpoint: checkpoint.file })
      return yield* output(checkpoint.state.params, history)
    }
    if (checkpoint !== undefined) yield* Stage.event("cascade.resumed", { epoch: checkpoint.state.epoch, checkpoint: checkpoint.file })
    const result = yield* Train.train(network, start, data, config, {
      ...(checkpoint === undefined ? {} : { resume: checkpoint.state }),
      ...(validation === undefined ? {} : { validation }),
      onEpoch: (report) =>
        Effect.gen(function* () {
          const record = {
            epoch: report.epoch, loss: report.loss, accuracy: report.accuracy, lr: report.lr,
            ...(report.validation === undefined ? {} : { valLoss: report.validation.loss, valAccuracy: report.validation.accuracy })
          }
          history.push(record)
          yield* Checkpoints.save(network, report.state, cacheDir, history)
          yield* Stage.event("cascade.epoch", { ...record, seconds: report.seconds })
          yield* Stage.recordEpoch(id, record)
          yield* Stage.reportProgress({
            stage: id, done: report.epoch, total: config.epochs, unit: "epochs",
            detail: `loss ${report.loss.toFixed(4)} acc ${(100 * report.accuracy).toFixed(1)}%${report.validation === undefined ? "" : ` val ${(100 * report.validation.accuracy).toFixed(1)}%`}`
          })
        })
    })
    yield* Effect.annotateCurrentSpan({ "crucible.cascade.layer": layer, "crucible.cascade.adapter": adapter, "crucible.cascade.features": features })
    return yield* output(result.state.params, history)
  })
})
