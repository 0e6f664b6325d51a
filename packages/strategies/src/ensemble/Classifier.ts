/**
 * A classifier is anything that turns input batches into logits: one network, or an ensemble of
 * them (`Ensemble.ts`), whose "logits" are the fused ones of `Combine.ts`. Stages that only need
 * a model's predictions (`evaluate`, the teacher of `distill`, the soups' validation) take a
 * classifier, so each accepts ensembles without knowing about them. A cascade bundle
 * (`progressive/CascadeBundle.ts`) is one too: its two stages are the members, run in series.
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
import * as Layout from "../models/Layout.ts"
import type { InputError } from "../models/ModelError.ts"
import type { Network } from "../models/Network.ts"
import type { ParamSet } from "../models/Params.ts"
import * as Runnable from "../models/Runnable.ts"
import * as Weights from "../models/Weights.ts"
import * as CascadeBundle from "../progressive/CascadeBundle.ts"
import * as Combine from "./Combine.ts"
import * as Ensemble from "./Ensemble.ts"
import { EnsembleError } from "./EnsembleError.ts"

/**
 * Logits `[n, classes]` of `n` samples `x` (`[n, sampleSize]`, PyTorch layout). The members' outputs
 * are read asynchronously (webgpu has no synchronous read in Node).
 */
export type BatchLogits = (x: Float32Array, n: number) => Effect.Effect<Float32Array>

/** @category models */
export interface Classifier {
  readonly source: string
  readonly inputShape: ReadonlyArray<number>
  readonly classes: number
  /** The member networks (one for a plain model) and their parameters. */
  readonly members: ReadonlyArray<{ readonly network: Network; readonly params: ParamSet }>
  /** How members are fused (undefined for a plain model). */
  readonly spec?: Ensemble.Spec
  /** For a cascade: member 0 runs to `layer`, member 1 on its features (flattened, PyTorch order). */
  readonly cascade?: CascadeBundle.Spec
}

/** A classifier of a model or an ensemble bundle (all tensors read). `arch` applies to a plain model only. */
export const fromModel = (model: Model.Model, arch: Runnable.ArchParam | undefined, resolvePath: (p: string) => string) =>
  Effect.gen(function* () {
    if (CascadeBundle.isCascade(model)) {
      if (arch !== undefined) return yield* new CascadeBundle.CascadeError({ reason: "InvalidParams", source: model.source, detail: "arch: cannot be given for a cascade: each stage carries its own" })
      const { spec, stages } = yield* CascadeBundle.decode(model)
      const [first, second] = yield* Effect.forEach(stages, (s) => Runnable.load(s, undefined, resolvePath))
      yield* CascadeBundle.checkStages(model.source, first!.network, second!.network, spec.layer)
      return {
        source: model.source,
        inputShape: first!.network.inputShape,
        classes: second!.network.outputShape[0]!,
        members: [first!, second!].map(({ network, params }) => ({ network, params })),
        cascade: spec
      } satisfies Classifier
    }
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
      const cascade = classifier.cascade
      if (cascade !== undefined) {
        const [first, second] = uploaded as [typeof uploaded[0], typeof uploaded[0]]
        const output = tf.tidy(() => {
          const input = tf.tensor2d(x.subarray(0, n * size), [n, size])
          const run = Forward.apply(first!.network, first!.weights, input, { training: false, capture: new Set([cascade.layer]) })
          const at = cascade.layer === CascadeBundle.OUTPUT ? run.output : run.activations.get(cascade.layer)!
          // Captured image activations are NHWC; stage 1 was trained on them flattened in PyTorch's NCHW order.
          const torch = at.rank === 4 ? tf.transpose(at, Layout.NHWC_TO_NCHW as Array<number>) : at
          const features = tf.reshape(torch, [n, torch.size / n])
          return Forward.apply(second!.network, second!.weights, features, { training: false }).output
        })
        return Effect.map(Forward.readAndDispose([output]), ([values]) => values!)
      }
      const outputs = tf.tidy(() => {
        const input = tf.tensor2d(x.subarray(0, n * size), [n, size])
        return uploaded.map((u) => Forward.apply(u.network, u.weights, input, { training: false }).output)
      })
      const spec = classifier.spec
      return Effect.map(Forward.readAndDispose(outputs), (each) => spec === undefined ? each[0]! : Combine.combine(spec.mode, each, n, classifier.classes, spec.weights))
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
        out.set(yield* run(data.x.subarray(start * size, end * size), end - start), start * classifier.classes)
      }
      return out
    })
  )

/** The dataset fits every member. */
export const check = (classifier: Classifier, data: Dataset): Effect.Effect<void, InputError> =>
  classifier.cascade !== undefined
    // Samples go into stage 0, classes come out of stage 1.
    ? Effect.asVoid(Evaluate.checkDataset({ ...classifier.members[0]!.network, outputShape: classifier.members[1]!.network.outputShape }, data))
    : Effect.forEach(classifier.members, (m) => Evaluate.checkDataset(m.network, data), { discard: true })

/** Accuracy, loss, per-class accuracy and ECE of the classifier on `data`. */
export const evaluate = Effect.fn("Classifier.evaluate")(function* (classifier: Classifier, data: Dataset, batchSize?: number) {
  const z = yield* logits(classifier, data, batchSize)
  return Metrics.fromLogits(z, data.y, classifier.classes, data.classNames)
})
