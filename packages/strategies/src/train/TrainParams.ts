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

/**
 * The fields, with their defaults and descriptions as annotations: `crucible kinds` and the
 * editor schema (`crucible schema`) show them; `config` below applies the same defaults.
 *
 * @category schemas
 */
export const TrainingFields = {
  data: Schema.optional(DataSource.DataParam.annotate({ description: "the dataset", default: "mnist" })),
  split: Schema.optional(DataSource.Split.annotate({ description: "the samples to train on", default: "train" })),
  validation: Schema.optional(DataSource.Split.annotate({ description: "a split evaluated after every epoch" })),
  epochs: Positive.annotate({ description: "passes over the training split" }),
  batch_size: Schema.optional(Positive.annotate({ description: "samples per step", default: 100 })),
  seed: Schema.optional(Schema.Int.annotate({ description: "initialisation and batch order", default: 0 })),
  optimizer: Schema.optional(Optimizer.Optimizer.annotate({ description: "sgd, adam or adamw, and its settings", default: { type: "adam", lr: 0.001 } })),
  schedule: Schema.optional(Schedule.Schedule.annotate({ description: "the learning rate over the steps (default: constant)" })),
  shuffle: Schema.optional(Schema.Boolean.annotate({ description: "reshuffle the samples every epoch", default: true })),
  drop_last: Schema.optional(Schema.Boolean.annotate({ description: "drop the last batch when it is smaller", default: false }))
}

/** ±`shift`-pixel translation of image samples. @category schemas */
export const AugmentField = {
  augment: Schema.optional(Schema.Struct({ shift: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)) }).annotate({ description: "±shift-pixel random translations of image samples" }))
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
