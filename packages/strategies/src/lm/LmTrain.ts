/**
 * The training loop of a causal language model, by optimizer steps: batches of `batchSize`
 * blocks of `TokenBlocks`, the next-token loss (or, with teachers, logit distillation), gradients
 * by `tf.variableGrads` through the model's custom gradients, an optimizer of
 * `train/Optimizer.ts` and a learning rate of `train/Schedule.ts` per step.
 *
 * Determinism: the blocks are read as one stream of permutations, epoch `e`'s drawn from
 * `derive(seed, "lm-blocks", e)`, and step `s` takes positions `[s·B, (s+1)·B)` of that stream;
 * the learning rate depends only on the step. A log interval ends at every multiple of
 * `logEvery`, of `checkpointEvery`, and at the last step, so the intervals (and their mean
 * losses) are the same whether or not the run was resumed from a checkpoint, and a resumed run
 * computes the same steps, on the same backend, as the uninterrupted one.
 *
 * Distillation: `(1 − α)·CE(y, z) + α·T²·KL(p̄ ‖ softmax(z/T))` averaged over the target tokens,
 * with `p̄` the mean over the teachers of `softmax(z_teacher/T)` — an ensemble of teachers. The
 * teachers' logits are computed on the device per batch, outside the tape.
 *
 * Every device tensor a step makes is disposed in the step; the device is read asynchronously
 * (webgpu has no synchronous read in Node), once per log interval.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs-core"
import { Effect, Schema } from "effect"
import { Backend } from "../backend/Backend.ts"
import * as Random from "../backend/Random.ts"
import * as KdLoss from "../distill/KdLoss.ts"
import * as Optimizer from "../train/Optimizer.ts"
import * as Schedule from "../train/Schedule.ts"
import type * as Packing from "../text/Packing.ts"
import type { LmConfig } from "./LmConfig.ts"
import type { LmWeights } from "./LmWeights.ts"
import * as Transformer from "./Transformer.ts"

/** Training failed or cannot start. @category errors */
export class LmTrainError extends Schema.TaggedError<LmTrainError>()("LmTrainError", {
  reason: Schema.Literals(["InvalidConfig", "ResumeMismatch", "Diverged", "BackendFailure"]),
  detail: Schema.String,
  step: Schema.optional(Schema.Number)
}) {
  override get message() {
    return `LM training ${this.reason}${this.step === undefined ? "" : ` (step ${this.step})`}: ${this.detail}`
  }
}

/** The hyperparameters of a run. @category models */
export interface LmTrainConfig {
  readonly steps: number
  readonly batchSize: number
  readonly seed: number
  readonly optimizer: Optimizer.Optimizer
  readonly schedule: Schedule.Schedule
  /** Steps between checkpoints (a log interval ends at each). */
  readonly checkpointEvery: number
  /** Steps between log records. */
  readonly logEvery: number
}

/** Everything needed to continue after a step. @category models */
export interface LmTrainState {
  /** Optimizer steps completed. */
  readonly step: number
  readonly weights: LmWeights
  /** Slots keyed `<tensor>.<slot>`, in the device's layout of the tensor. */
  readonly optimizer: Optimizer.OptimizerState
}

/** Teachers to distil from, and the mix. @category models */
export interface Distillation {
  readonly teachers: ReadonlyArray<{ readonly config: LmConfig; readonly weights: LmWeights }>
  /** T > 0. */
  readonly temperature: number
  /** α ∈ [0, 1], the weight of the distillation term. */
  readonly alpha: number
}

/** What a log interval did. */
export interface LogReport {
  /** Steps completed. */
  readonly step: number
  /** Mean loss over the interval's steps. */
  readonly loss: number
  /** The rate of the interval's last step. */
  readonly lr: number
  /** Tokens trained on per second over the interval (a timing: never put it in outputs). */
  readonly tokensPerSecond: number
  /** The state after `step`, when a checkpoint is due (every `checkpointEvery` steps and at the end). */
  readonly checkpoint?: LmTrainState
}

/** Options of {@link train}. */
export interface LmTrainOptions<E, R> {
  readonly resume?: LmTrainState
  readonly distill?: Distillation
  /** Called at the end of every log interval (checkpoints, history, progress); its failure stops training. */
  readonly onLog?: (report: LogReport) => Effect.Effect<void, E, R>
}

/**
 * The block order of a run: `at(step)` gives the block indices of step `step`'s batch (see the
 * module doc). The last epoch's permutation is kept, so consecutive steps draw it once.
 */
export const blockOrder = (count: number, batchSize: number, seed: number) => {
  let epoch = -1
  let order: Int32Array = new Int32Array(0)
  return (step: number): Int32Array => {
    const out = new Int32Array(batchSize)
    for (let i = 0; i < batchSize; i++) {
      const position = step * batchSize + i
      const e = Math.floor(position / count)
      if (e !== epoch) {
        epoch = e
        order = Random.make(Random.derive(seed, "lm-blocks", e)).permutation(count)
      }
      out[i] = order[position % count]!
    }
    return out
  }
}

/** The block indices of step `step`'s batch. */
export const batchBlocks = (count: number, batchSize: number, seed: number, step: number): Int32Array => blockOrder(count, batchSize, seed)(step)

/** Whether a log interval ends after `step` steps. */
export const logsAt = (config: Pick<LmTrainConfig, "steps" | "logEvery" | "checkpointEvery">, step: number): boolean =>
  step % config.logEvery === 0 || step % config.checkpointEvery === 0 || step === config.steps

/** Whether a checkpoint is due after `step` steps. */
export const checkpointsAt = (config: Pick<LmTrainConfig, "steps" | "checkpointEvery">, step: number): boolean =>
  step % config.checkpointEvery === 0 || step === config.steps

/**
 * The distillation loss of student logits `z` `[B, T, V]` against the teachers' mean probabilities
 * at temperature `t`, `teacher` `[B, T, V]`, and the targets `[B, T]`, averaged over the B·T
 * positions: distill/KdLoss's `hinton` over the positions as rows (`T²`-scaled KL plus `1 − α` of
 * the hard cross-entropy), `∂L/∂z = [(1 − α)(softmax(z) − onehot(y)) + α·T·(softmax(z/T) − p̄)] / (B·T)`.
 */
export const distillLoss = (logits: tf.Tensor3D, teacher: tf.Tensor3D, targets: tf.Tensor2D, options: KdLoss.KdOptions): tf.Scalar =>
  KdLoss.hinton(logits, teacher, targets, options)

/** The mean over the teachers of `softmax(z/T)`, `[B, T, V]` (no gradients: outside any tape). */
const teacherProbabilities = (teachers: ReadonlyArray<Transformer.LmDevice>, ids: tf.Tensor2D, t: number): tf.Tensor3D =>
  tf.tidy(() => {
    let sum: tf.Tensor | undefined
    for (const teacher of teachers) {
      const p = tf.softmax(tf.div(Transformer.logits(teacher, ids), t))
      sum = sum === undefined ? p : tf.add(sum, p)
    }
    return tf.div(sum!, teachers.length) as tf.Tensor3D
  })

const checkResume = (config: LmTrainConfig, device: Transformer.LmDevice, resume: LmTrainState): Effect.Effect<void, LmTrainError> => {
  const fail = (detail: string) => Effect.fail(new LmTrainError({ reason: "ResumeMismatch", detail, step: resume.step }))
  if (!Number.isInteger(resume.step) || resume.step < 0 || resume.step > config.steps) return fail(`resume step ${resume.step} is outside [0, ${config.steps}]`)
  if (resume.optimizer.type !== config.optimizer.type) return fail(`the state is for optimizer "${resume.optimizer.type}", the configuration uses "${config.optimizer.type}"`)
  if (resume.optimizer.step !== resume.step) return fail(`the optimizer state has ${resume.optimizer.step} steps, the training state ${resume.step}`)
  for (const [name, variable] of device.variables) {
    if (!variable.trainable) continue
    for (const slot of Optimizer.slotNames(config.optimizer)) {
      const saved = resume.optimizer.slots.get(`${name}.${slot}`)
      if (saved === undefined || saved.data.length !== variable.size) return fail(`optimizer slot "${name}.${slot}" is missing or has the wrong size`)
    }
  }
  return Effect.void
}

const backendFailure = (step: number) => (cause: unknown) =>
  new LmTrainError({ reason: "BackendFailure", detail: cause instanceof Error ? cause.message : String(cause), step })

/** Trains `start` (weights of `config`) on `blocks`; see the module doc. Returns the final state. */
export const train = <E = never, R = never>(
  config: LmConfig,
  start: LmWeights,
  blocks: Packing.TokenBlocks,
  run: LmTrainConfig,
  options: LmTrainOptions<E, R> = {}
): Effect.Effect<LmTrainState, LmTrainError | E, Backend | R> =>
  Effect.gen(function* () {
    const backend = yield* Backend
    yield* Effect.annotateCurrentSpan("crucible.backend", backend.name)
    const invalid = (detail: string) => new LmTrainError({ reason: "InvalidConfig", detail })
    if (blocks.count === 0) return yield* invalid(`"${blocks.name}" holds no block of ${blocks.seqLen + 1} tokens: give more text or a shorter seq_len`)
    if (blocks.seqLen > config.maxPositions) return yield* invalid(`seq_len ${blocks.seqLen} exceeds the model's ${config.maxPositions} positions`)
    for (const [i, t] of (options.distill?.teachers ?? []).entries()) {
      if (t.config.vocabSize !== config.vocabSize) return yield* invalid(`teacher ${i} has a vocabulary of ${t.config.vocabSize}, the student ${config.vocabSize}: distillation needs the same tokenizer`)
    }
    const resume = options.resume
    const student = yield* Effect.acquireRelease(
      Effect.try({ try: () => Transformer.upload(config, resume?.weights ?? start, { trainable: true }), catch: backendFailure(resume?.step ?? 0) }),
      (d) => Effect.sync(() => d.dispose())
    )
    if (resume !== undefined) yield* checkResume(run, student, resume)
    const teachers = yield* Effect.forEach(options.distill?.teachers ?? [], (t) =>
      Effect.acquireRelease(
        Effect.try({ try: () => Transformer.upload(t.config, t.weights, { trainable: false }), catch: backendFailure(0) }),
        (d) => Effect.sync(() => d.dispose())
      ))
    // Each trainable tensor as the optimizer sees it: its slots keep the device's shape and layout.
    const trainables = [...student.variables].filter(([, v]) => v.trainable).map(([name, variable]) => ({
      spec: { name, layout: "vector" as const },
      variable
    }))
    const nameOf = new Map(trainables.map((t) => [t.variable.name, t.spec.name] as const))
    const optimizer = yield* Effect.acquireRelease(
      Effect.try({ try: () => Optimizer.create(run.optimizer, trainables, resume?.optimizer), catch: backendFailure(resume?.step ?? 0) }),
      (o) => Effect.sync(() => o.dispose())
    )
    const lossSum = yield* Effect.acquireRelease(Effect.sync(() => tf.tidy(() => tf.variable(tf.scalar(0), false))), (v) => Effect.sync(() => v.dispose()))

    const seqLen = blocks.seqLen
    const row = seqLen + 1
    const inputs = new Int32Array(run.batchSize * seqLen)
    const targets = new Int32Array(run.batchSize * seqLen)
    const stepsPerEpoch = Math.max(1, Math.ceil(blocks.count / run.batchSize))
    const distill = options.distill
    const order = blockOrder(blocks.count, run.batchSize, run.seed)

    const step = (s: number, lr: number): void => {
      const picked = order(s)
      for (let i = 0; i < picked.length; i++) {
        const from = picked[i]! * row
        inputs.set(blocks.tokens.subarray(from, from + seqLen), i * seqLen)
        targets.set(blocks.tokens.subarray(from + 1, from + row), i * seqLen)
      }
      tf.tidy(() => {
        const ids = tf.tensor2d(inputs, [run.batchSize, seqLen], "int32")
        const ys = tf.tensor2d(targets, [run.batchSize, seqLen], "int32")
        const soft = distill === undefined ? undefined : teacherProbabilities(teachers, ids, distill.temperature)
        const { value, grads } = tf.variableGrads(() => {
          const z = Transformer.logits(student, ids)
          return soft === undefined ? Transformer.nextTokenLoss(z, ys) : distillLoss(z, soft, ys, distill!)
        }, trainables.map((t) => t.variable))
        const named = new Map<string, tf.Tensor>()
        for (const [variableName, grad] of Object.entries(grads)) {
          const name = nameOf.get(variableName)
          if (name !== undefined) named.set(name, grad)
        }
        optimizer.apply(named, lr)
        lossSum.assign(tf.add(lossSum, value))
      })
    }

    const read = <A>(s: number, f: () => Promise<A>) => Effect.tryPromise({ try: f, catch: backendFailure(s) })
    const state = (s: number) =>
      Effect.gen(function* () {
        const weights = yield* read(s, () => Transformer.download(student))
        // webgpu reads asynchronously: copy the slots to the host before `state()` reads them.
        yield* read(s, () => Promise.all(optimizer.slotTensors().map((t) => t.data())))
        const result: LmTrainState = { step: s, weights, optimizer: optimizer.state() }
        return result
      })

    let done = resume?.step ?? 0
    let began = performance.now()
    let intervalSteps = 0
    let lr = 0
    let last = resume
    while (done < run.steps) {
      lr = Schedule.rate(run.schedule, run.optimizer.lr, { step: done, stepsPerEpoch, totalSteps: run.steps })
      yield* Effect.try({ try: () => step(done, lr), catch: backendFailure(done + 1) })
      done++
      intervalSteps++
      yield* Effect.yieldNow
      if (!logsAt(run, done)) continue
      const [sum] = yield* read(done, () => lossSum.data())
      tf.tidy(() => lossSum.assign(tf.zerosLike(lossSum)))
      const loss = sum! / intervalSteps
      if (!Number.isFinite(loss)) return yield* new LmTrainError({ reason: "Diverged", detail: `mean training loss is ${loss}; lower the learning rate`, step: done })
      const seconds = (performance.now() - began) / 1000
      const tokensPerSecond = (intervalSteps * run.batchSize * seqLen) / Math.max(seconds, 1e-9)
      yield* Effect.annotateCurrentSpan({ "crucible.train.loss": loss, "crucible.train.lr": lr, "crucible.train.step": done })
      const checkpoint = checkpointsAt(run, done) ? yield* state(done) : undefined
      if (checkpoint !== undefined) last = checkpoint
      if (options.onLog !== undefined) yield* options.onLog({ step: done, loss, lr, tokensPerSecond, ...(checkpoint === undefined ? {} : { checkpoint }) })
      intervalSteps = 0
      began = performance.now()
    }
    // The last step always checkpoints, so `last` is the final state unless no step ran.
    return last !== undefined && last.step === done ? last : yield* state(done)
  }).pipe(Effect.scoped, Effect.withSpan("LmTrain.train", { attributes: { "crucible.train.steps": run.steps, "crucible.train.batchSize": run.batchSize } }))
