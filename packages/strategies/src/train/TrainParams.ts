/**
 * The training parameters every stage that trains shares (`train`, `distill`, `progressive/cascade`),
 * as written in YAML, and the `Train.TrainConfig` they mean.
 *
 * @since 0.1.0
 */
import { Stage } from "@crucible/core"
import { Schema } from "effect"
import * as DataSource from "../data/Source.ts"
import * as Optimizer from "./Optimizer.ts"
import * as Schedule from "./Schedule.ts"
import type * as Train from "./Train.ts"

const Positive = Schema.Int.check(Schema.isGreaterThan(0))

/**
 * The fields, with their defaults in the Schema (`Stage.withDefault`): decoded params carry them,
 * so they are part of the stage's key, and `crucible kinds` and the editor schema show them.
 *
 * @category schemas
 */
export const TrainingFields = {
  data: DataSource.dataField(),
  split: DataSource.splitField("train", "the samples to train on"),
  validation: Schema.optional(DataSource.Split.annotate({ description: "a split evaluated after every epoch" })),
  epochs: Positive.annotate({ description: "passes over the training split" }),
  batch_size: Positive.annotate({ description: "samples per step" }).pipe(Stage.withDefault(100)),
  seed: Schema.Int.annotate({ description: "initialisation and batch order" }).pipe(Stage.withDefault(0)),
  optimizer: Optimizer.Optimizer.annotate({ description: "sgd, adam or adamw, and its settings" }).pipe(Stage.withDefault<typeof Optimizer.Optimizer>({ type: "adam", lr: 0.001 })),
  schedule: Schedule.Schedule.annotate({ description: "the learning rate over the steps" }).pipe(Stage.withDefault<typeof Schedule.Schedule>({ type: "constant" })),
  shuffle: Schema.Boolean.annotate({ description: "reshuffle the samples every epoch" }).pipe(Stage.withDefault(true)),
  drop_last: Schema.Boolean.annotate({ description: "drop the last batch when it is smaller" }).pipe(Stage.withDefault(false))
}

/** ±`shift`-pixel translation of image samples. @category schemas */
export const AugmentField = {
  augment: Schema.optional(Schema.Struct({ shift: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)) }).annotate({ description: "±shift-pixel random translations of image samples" }))
}

type Written = Schema.Struct.Type<typeof TrainingFields> & Partial<Schema.Struct.Type<typeof AugmentField>>

/** The training configuration the (decoded) params mean. */
export const config = (params: Written): Train.TrainConfig => ({
  epochs: params.epochs,
  batchSize: params.batch_size,
  seed: params.seed,
  optimizer: params.optimizer,
  schedule: params.schedule,
  shuffle: params.shuffle,
  dropLast: params.drop_last,
  ...(params.augment === undefined ? {} : { augment: params.augment })
})
