/**
 * The hint loss of a distillation (FitNets, Romero et al. 2015): a named intermediate activation
 * of the student, flattened, is mapped by a learned projection `W` `[d_s, d_t]` onto the
 * teacher's activation of another name, and `β·mean((h_s·W − h_t)²)` joins the loss. The teacher's
 * activations are computed once over the data. `W` starts at `U(±1/√d_s)` (seeded) and takes a
 * plain SGD step on its own gradient at every training step (it is not a parameter of the
 * student's network, so it is not checkpointed: a resumed run restarts it).
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs-core"
import { Stage } from "@crucible/core"
import { Effect, Schema, type Scope } from "effect"
import * as Random from "../backend/Random.ts"
import type { Dataset } from "../data/Dataset.ts"
import type { Classifier } from "../ensemble/Classifier.ts"
import { EnsembleError } from "../ensemble/EnsembleError.ts"
import * as Forward from "../models/Forward.ts"
import * as Layers from "../models/Layers.ts"
import type { Network } from "../models/Network.ts"
import type { LossInput } from "../train/Trainer.ts"
import * as KdLoss from "./KdLoss.ts"

/** `hint:` as written. @category schemas */
export const HintParam = Schema.Struct({
  /** Activation of the student (names as in `models/Network.ts`, e.g. `act.0`). */
  student: Schema.String,
  /** Activation of the teacher (a plain model, not an ensemble). */
  teacher: Schema.String,
  /** β, the weight of the hint term. */
  weight: Schema.Finite.check(Schema.isGreaterThan(0)).annotate({ description: "β, the weight of the hint term" }).pipe(Stage.withDefault(1)),
  /** Learning rate of the projection's SGD. */
  lr: Schema.Finite.check(Schema.isGreaterThan(0)).annotate({ description: "learning rate of the projection's SGD" }).pipe(Stage.withDefault(0.01))
})
export type HintParam = typeof HintParam.Type

/** A prepared hint term. */
export interface Hint {
  readonly student: string
  /** The hint loss of a batch (on the tape); also steps the projection. */
  readonly loss: (batch: LossInput) => tf.Scalar
}

/** Checks the names, computes the teacher's activations and sets up the projection (released with the scope). */
export const prepare = (param: HintParam, student: Network, teacher: Classifier, data: Dataset, seed: number, stage: string): Effect.Effect<Hint, EnsembleError | Effect.Error<ReturnType<typeof Forward.forward>>, Effect.Services<ReturnType<typeof Forward.forward>> | Scope.Scope> =>
  Effect.gen(function* () {
    const fail = (detail: string) => new EnsembleError({ reason: "InvalidParams", source: stage, detail })
    if (teacher.members.length !== 1) return yield* fail("hint: needs a single teacher model, not an ensemble")
    if (!student.activationNames.includes(param.student)) return yield* fail(`hint.student "${param.student}" is not an activation of the student (known: ${student.activationNames.join(", ")})`)
    const t = teacher.members[0]!
    const acts = yield* Forward.forward(t.network, t.params, { shape: [data.count, ...data.shape], data: data.x }, { capture: [param.teacher], batchSize: 512 })
    const target = acts.activations.get(param.teacher)!
    const dt = target.data.length / data.count
    const beta = param.weight
    const lr = param.lr
    const rng = Random.make(Random.derive(seed, "hint-projection"))
    const state: { w: tf.Variable | undefined } = { w: undefined }
    yield* Effect.addFinalizer(() => Effect.sync(() => state.w?.dispose()))
    return {
      student: param.student,
      loss: (batch) => {
        const h = Layers.flatten(batch.activations.get(param.student)!)
        const [n, ds] = h.shape
        if (state.w === undefined) {
          const bound = 1 / Math.sqrt(ds)
          const init = Float32Array.from({ length: ds * dt }, () => rng.uniform(-bound, bound))
          state.w = tf.tidy(() => tf.variable(tf.tensor2d(init, [ds, dt]), false))
        }
        const rows = new Float32Array(n * dt)
        for (let i = 0; i < n; i++) rows.set(target.data.subarray(batch.indices[i]! * dt, (batch.indices[i]! + 1) * dt), i * dt)
        const goal = tf.tensor2d(rows, [n, dt])
        // The loss saves its own copy of W: the step below replaces the variable's data before the backward pass.
        const value = KdLoss.hint(h, state.w as unknown as tf.Tensor2D, goal, beta)
        state.w.assign(tf.sub(state.w, tf.mul(KdLoss.hintProjectionGrad(h, state.w as unknown as tf.Tensor2D, goal, beta), lr)))
        return value
      }
    }
  })
