/**
 * Learning-rate schedules, a pure function of the global step (0-based, counted over all
 * epochs), so a resumed run computes the same rates:
 *
 * - `constant`: `lr`.
 * - `step`: `lr · gamma^⌊epoch / every⌋` (PyTorch's `StepLR` stepped once per epoch).
 * - `cosine`: `min + (lr − min)·(1 + cos(π·t/T))/2` with `t` the step after warmup and `T` the
 *   steps after warmup (`CosineAnnealingLR` stepped per batch, ending at `min`).
 * - any of them with `warmupSteps: W`: for `step < W` the rate is `lr·(step + 1)/W` (linear
 *   warmup), after which the schedule runs on.
 *
 * ```yaml
 * schedule: { type: cosine, min: 0.0001, warmupSteps: 100 }
 * ```
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const Warmup = { warmupSteps: Schema.optional(NonNegativeInt) }

/** @category schemas */
export const Constant = Schema.Struct({ type: Schema.Literal("constant"), ...Warmup })

/** @category schemas */
export const Step = Schema.Struct({
  type: Schema.Literal("step"),
  /** Epochs between decays. */
  every: Schema.Int.check(Schema.isGreaterThan(0)),
  /** Factor per decay. */
  gamma: Schema.Finite.check(Schema.isGreaterThan(0)),
  ...Warmup
})

/** @category schemas */
export const Cosine = Schema.Struct({
  type: Schema.Literal("cosine"),
  /** The final rate (default 0). */
  min: Schema.optional(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))),
  ...Warmup
})

/** A learning-rate schedule. @category schemas */
export const Schedule = Schema.Union([Constant, Step, Cosine])

/** @category models */
export type Schedule = typeof Schedule.Type

/** Where training is, for {@link rate}. */
export interface Progress {
  /** 0-based global step. */
  readonly step: number
  readonly stepsPerEpoch: number
  readonly totalSteps: number
}

/** The learning rate at a step. */
export const rate = (schedule: Schedule, lr: number, progress: Progress): number => {
  const warmup = schedule.warmupSteps ?? 0
  if (progress.step < warmup) return (lr * (progress.step + 1)) / warmup
  switch (schedule.type) {
    case "constant":
      return lr
    case "step":
      return lr * schedule.gamma ** Math.floor(Math.floor(progress.step / progress.stepsPerEpoch) / schedule.every)
    case "cosine": {
      const min = schedule.min ?? 0
      const span = Math.max(1, progress.totalSteps - warmup)
      const t = Math.min(progress.step - warmup, span)
      return min + ((lr - min) * (1 + Math.cos((Math.PI * t) / span))) / 2
    }
  }
}
