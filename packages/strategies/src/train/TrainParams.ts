/**
 * The training parameters every stage that trains shares (`train`, `distill`, `progressive/cascade`),
 * as written in YAML, and the `Train.TrainConfig` they mean.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import * as DataSource from "../data/Source.ts"
import * as Optimizer from "./Optimizer.ts"
import * as Schedule from "./Schedule.ts"
import type * as Train from "./Train.ts"

const Positive = Schema.Int.check(Schema.isGreaterThan(0))

/** @category schemas */
export const TrainingFields = {
  data: Schema.optional(DataSource.DataParam),
  /** Default `train`. */
  split: Schema.optional(DataSource.Split),
  /** Evaluated after every epoch. */
  validation: Schema.optional(DataSource.Split),
  epochs: Positive,
  /** Default 100. */
  batch_size: Schema.optional(Positive),
  /** Default 0: initialisation and batch order. */
  seed: Schema.optional(Schema.Int),
  /** Default `{ type: adam, lr: 0.001 }`. */
  optimizer: Schema.optional(Optimizer.Optimizer),
  schedule: Schema.optional(Schedule.Schedule),
  shuffle: Schema.optional(Schema.Boolean),
  drop_last: Schema.optional(Schema.Boolean)
}

/** ±`shift`-pixel translation of image samples. @category schemas */
export const AugmentField = {
  augment: Schema.optional(Schema.Struct({ shift: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)) }))
}

type Written = Schema.Struct.Type<typeof TrainingFields> & Partial<Schema.Struct.Type<typeof AugmentField>>

/** The training configuration the params mean, with the defaults above. */
export const config = (params: Written): Train.TrainConfig => ({
  epochs: params.epochs,
  batchSize: params.batch_size ?? 100,
  seed: params.seed ?? 0,
  optimizer: params.optimizer ?? { type: "adam", lr: 0.001 },
  ...(params.schedule === undefined ? {} : { schedule: params.schedule }),
  ...(params.shuffle === undefined ? {} : { shuffle: params.shuffle }),
  ...(params.drop_last === undefined ? {} : { dropLast: params.drop_last }),
  ...(params.augment === undefined ? {} : { augment: params.augment })
})
