/**
 * A classifier is anything that turns input batches into logits: one network, or an ensemble of
 * them (`Ensemble.ts`), whose "logits" are the fused ones of `Combine.ts`. Stages that only need
 * a model's predictions (`evaluate`, the teacher of `distill`, the soups' validation) take a
 * classifier, so each accepts ensembles without knowing about them.
 *
 * @since 0.1.0
 */
import type { Model } from "@crucible/core"
import * as tf from "@tensorflow/tfjs-core"
import { Effect, type Scope } from "effect"
import type { Backend } from "../backend/Backend.ts"
import { type Dataset, sampleSize } from "../data/Dataset.ts"
import * as Evaluate from "../evaluate/Evaluate.ts"
import * as Metrics from "../evaluate/Metrics.ts"
import * as Forward from "../models/Forward.ts"
import type { InputError } from "../models/ModelError.ts"
import type { Network } from "../models/Network.ts"
import type { ParamSet } from "../models/Params.ts"
import * as Runnable from "../models/Runnable.ts"
import * as Weights from "../models/Weights.ts"
import * as Combine from "./Combine.ts"
import * as Ensemble from "./Ensemble.ts"
import { EnsembleError } from "./EnsembleError.ts"

/** Logits `[n, classes]` of `n` samples `x` (`[n, sampleSize]`, PyTorch layout); synchronous TF.js work. */
export type BatchLogits = (x: Float32Array, n: number) => Float32Array

/** @category models */
export interface Classifier {
  readonly source: string
  readonly inputShape: ReadonlyArray<number>
  readonly classes: number
  /** The member networks (one for a plain model) and their parameters. */
  readonly members: ReadonlyArray<{ readonly network: Network; readonly params: ParamSet }>
  /** How members are fused (undefined for a plain model). */
  readonly spec?: Ensemble.Spec
}

/** A classifier of a model or an ensemble bundle (all tensors read). `arch` applies to a plain model only. */
export const fromModel = (model: Model.Model, arch: Runnable.ArchParam | undefined, resolvePath: (p: string) => string) =>
  Effect.gen(function* () {
    if (!Ensemble.isEnsemble(model)) {
      const { network, params } = yield* Runnable.load(model, arch, resolvePath)
      return make(model.source, [{ network, params }])
    }
    if (arch !== undefined) return yield* new EnsembleError({ reason: "InvalidParams", source: model.source, detail: "arch: cannot be given for an ensemble: each member carries its own" })
    const { spec, members } = yield* Ensemble.decode(model)
    const loaded = yield* Effect.forEach(members, (m) => Runnable.load(m, undefined, resolvePath))
    return yield* checkMembers(model.source, loaded.map((l) => l.network)).pipe(Effect.as(make(model.source, loaded, spec)))
  })

const make = (source: string, members: Classifier["members"], spec?: Ensemble.Spec): Classifier => ({
  source,
  inputShape: members[0]!.network.inputShape,
  classes: members[0]!.network.outputShape[0]!,
  members,
  ...(spec === undefined ? {} : { spec })
})

/** Members must take the same input size and output the same classes. */
export const checkMembers = (source: string, networks: ReadonlyArray<Network>): Effect.Effect<void, EnsembleError> => {
  const first = networks[0]!
  const size = (n: Network) => n.inputShape.reduce((a, b) => a * b, 1)
  for (const [i, n] of networks.entries()) {
    if (n.outputShape.length !== 1) return Effect.fail(new EnsembleError({ reason: "MembersMismatch", source, detail: `member ${i} outputs [${n.outputShape.join(", ")}], not class logits` }))
    if (size(n) !== size(first)) return Effect.fail(new EnsembleError({ reason: "MembersMismatch", source, detail: `member ${i} takes [${n.inputShape.join(", ")}], member 0 [${first.inputShape.join(", ")}]` }))
    if (n.outputShape[0] !== first.outputShape[0]) return Effect.fail(new EnsembleError({ reason: "MembersMismatch", source, detail: `member ${i} has ${n.outputShape[0]} classes, member 0 ${first.outputShape[0]}` }))
  }
  return Effect.void
}

/** Uploads the members' weights for the scope and returns the batch function. */
export const open = (classifier: Classifier): Effect.Effect<BatchLogits, never, Backend | Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => classifier.members.map((m) => ({ network: m.network, weights: Weights.upload(m.network, m.params) }))),
      (uploaded) => Effect.sync(() => uploaded.forEach((u) => Weights.dispose(u.weights)))
    ),
    (uploaded) => (x, n) => {
      const size = sampleSize({ shape: classifier.inputShape })
      const each = uploaded.map((u) =>
        tf.tidy(() => Forward.apply(u.network, u.weights, tf.tensor2d(x.subarray(0, n * size), [n, size]), { training: false }).output.dataSync() as Float32Array)
      )
      const spec = classifier.spec
      return spec === undefined ? each[0]! : Combine.combine(spec.mode, each, n, classifier.classes, spec.weights)
    }
  )

/** Logits of every sample of `data`, in batches of `batchSize` (default 512). */
export const logits = (classifier: Classifier, data: Dataset, batchSize = 512): Effect.Effect<Float32Array, InputError, Backend> =>
  Effect.scoped(
    Effect.gen(function* () {
      yield* check(classifier, data)
      const run = yield* open(classifier)
      const size = sampleSize(data)
      const out = new Float32Array(data.count * classifier.classes)
      for (let start = 0; start < data.count; start += batchSize) {
        const end = Math.min(data.count, start + batchSize)
        out.set(run(data.x.subarray(start * size, end * size), end - start), start * classifier.classes)
      }
      return out
    })
  )

/** The dataset fits every member. */
export const check = (classifier: Classifier, data: Dataset): Effect.Effect<void, InputError> =>
  Effect.forEach(classifier.members, (m) => Evaluate.checkDataset(m.network, data), { discard: true })

/** Accuracy, loss, per-class accuracy and ECE of the classifier on `data`. */
export const evaluate = Effect.fn("Classifier.evaluate")(function* (classifier: Classifier, data: Dataset, batchSize?: number) {
  const z = yield* logits(classifier, data, batchSize)
  return Metrics.fromLogits(z, data.y, classifier.classes, data.classNames)
})
