/**
 * The params the LM stages share (model files, text data, training), with their defaults in the
 * Schema, what they read (for the stage key), and how a stage finds its config and tokenizer.
 *
 * @since 0.1.0
 */
import { Model, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Optimizer from "../../train/Optimizer.ts"
import * as Schedule from "../../train/Schedule.ts"
import * as TextSource from "../../text/TextSource.ts"
import * as TextTokenizer from "../../text/TextTokenizer.ts"
import * as Packing from "../../text/Packing.ts"
import type { LmConfig } from "../LmConfig.ts"
import type { LmTrainConfig } from "../LmTrain.ts"
import { LmStageError } from "./LmStageError.ts"

/** A positive integer param (counts, sizes, steps) of the lm/* stages. */
export const Positive = Schema.Int.check(Schema.isGreaterThan(0))

/** `config:` and `tokenizer:`, both optional where a model carries them. @category schemas */
export const ModelFields = {
  config: Schema.optional(
    Schema.Union([Schema.String, Schema.Record(Schema.String, Schema.Unknown)]).annotate({
      description: "the model's config.json: a folder holding it (and tokenizer.json), the file, or the object inline; default: the input model's"
    })
  ),
  tokenizer: Schema.optional(Schema.String.annotate({ description: "a tokenizer.json, or a folder holding one; default: the input model's (its folder), else the config folder's" }))
}

/** The text to train or evaluate on. @category schemas */
export const TextFields = (split: "train" | "test", description: string) => ({
  data: TextSource.TextParam.annotate({ description: "brown, { text: file or folder }, or { jsonl: file, field?, group_field? }" }).pipe(Stage.withDefault<typeof TextSource.TextParam>("brown")),
  split: TextSource.TextSplit.annotate({ description }).pipe(Stage.withDefault<typeof TextSource.TextSplit>(split)),
  groups: Schema.optional(TextSource.GroupsParam.annotate({ description: "keep these groups (genres), or named groups of groups" })),
  seq_len: Positive.annotate({ description: "tokens per block" }).pipe(Stage.withDefault(128))
})

/** The training params `lm/train` and `lm/distill` share. @category schemas */
export const TrainingFields = {
  ...TextFields("train", "the documents to train on"),
  steps: Positive.annotate({ description: "optimizer steps" }),
  batch_size: Positive.annotate({ description: "blocks per step" }).pipe(Stage.withDefault(16)),
  seed: Schema.Int.annotate({ description: "initialisation and block order" }).pipe(Stage.withDefault(0)),
  optimizer: Optimizer.Optimizer.annotate({ description: "sgd, adam or adamw, and its settings" }).pipe(Stage.withDefault<typeof Optimizer.Optimizer>({ type: "adamw", lr: 0.001 })),
  schedule: Schedule.Schedule.annotate({ description: "the learning rate over the steps" }).pipe(Stage.withDefault<typeof Schedule.Schedule>({ type: "constant" })),
  max_blocks: Schema.optional(Positive.annotate({ description: "train on at most this many blocks (spread evenly over the data)" })),
  checkpoint_every: Schema.optional(Positive.annotate({ description: "steps between checkpoints (default: a quarter of the steps)" })),
  log_every: Positive.annotate({ description: "steps between loss records" }).pipe(Stage.withDefault(10))
}

type Files = { readonly config?: string | Readonly<Record<string, unknown>> | undefined; readonly tokenizer?: string | undefined }

/** What the config and tokenizer params read. */
export const modelReads = (params: Files): ReadonlyArray<Stage.Read> => [
  ...(typeof params.config === "string" ? [{ file: params.config }] : []),
  ...(params.tokenizer === undefined ? [] : [{ file: params.tokenizer }])
]

/** The folder a `config:` path names (the path itself, or a config.json's folder), resolved. */
export const configFolder = (config: string, resolvePath: (p: string) => string): string => {
  const resolved = resolvePath(config)
  return fs.statSync(resolved, { throwIfNoEntry: false })?.isDirectory() === true ? resolved : path.dirname(resolved)
}

/**
 * The tokenizer of a stage: `tokenizer:` when given; else the model's (its provenance's
 * tokenizer or donor folder); else the folder of `config:` (its tokenizer.json).
 */
export const tokenizer = (model: Model.Model | undefined, params: Files, resolvePath: (p: string) => string) => {
  const modelHasOne = model?.provenance?.tokenizer !== undefined || model?.provenance?.donor !== undefined
  const fromConfig = !modelHasOne && typeof params.config === "string" ? configFolder(params.config, resolvePath) : undefined
  return TextTokenizer.tokenizerOf(model, params.tokenizer ?? fromConfig, (p) => (p === fromConfig ? p : resolvePath(p)))
}

/**
 * Refuses a tokenizer whose ids reach past the model's embedding rows: the wasm backend's gather
 * reads whatever lies past the table rather than failing, so the check must come first.
 */
export const checkVocabulary = (stage: string, tokenizer: TextTokenizer.TextTokenizer, config: LmConfig): Effect.Effect<void, LmStageError> =>
  tokenizer.vocabSize > config.vocabSize
    ? Effect.fail(new LmStageError({
      stage,
      reason: "VocabularyMismatch",
      detail: `the tokenizer (${tokenizer.source}) has ${tokenizer.vocabSize} tokens, the model's vocab_size is ${config.vocabSize}: give a matching tokenizer or config`
    }))
    : Effect.void

/** Refuses blocks longer than the model's positions (`max_position_embeddings`). */
export const checkPositions = (stage: string, seqLen: number, config: LmConfig): Effect.Effect<void, LmStageError> =>
  seqLen > config.maxPositions
    ? Effect.fail(new LmStageError({ stage, reason: "InvalidParams", detail: `seq_len ${seqLen} exceeds the model's ${config.maxPositions} positions (max_position_embeddings)` }))
    : Effect.void

/**
 * The provenance of a model trained from `init` (its provenance plus the method), or from
 * `config:` (that folder as the donor when it holds a config.json), so `save` with `format: hf`
 * writes config.json and the tokenizer beside the weights. `tokenizer:` overrides the tokenizer folder.
 */
export const trainedProvenance = (method: string, init: Model.Model | undefined, params: Files, resolvePath: (p: string) => string): Model.Provenance | undefined => {
  let provenance = init === undefined ? undefined : Model.combine(method, { models: [init] })
  const fresh = (): Model.Provenance => provenance ?? { folders: [], methods: [method] }
  if (params.config !== undefined) {
    // A given config replaces the init's: its folder is the donor, or there is none (inline).
    const folder = typeof params.config === "string" ? configFolder(params.config, resolvePath) : undefined
    const donor = folder !== undefined && fs.existsSync(path.join(folder, "config.json")) ? folder : undefined
    if (donor !== undefined) provenance = { ...fresh(), donor }
    else if (provenance !== undefined) {
      const { donor: _, ...rest } = provenance
      provenance = rest
    }
  }
  if (params.tokenizer !== undefined) provenance = { ...fresh(), tokenizer: configFolder(params.tokenizer, resolvePath) }
  return provenance
}

/** At most `max` blocks, spread evenly (deterministically) over `blocks`. */
export const cap = (blocks: Packing.TokenBlocks, max: number | undefined): Packing.TokenBlocks => {
  if (max === undefined || blocks.count <= max) return blocks
  const row = blocks.seqLen + 1
  const tokens = new Int32Array(max * row)
  const groupOf = new Int32Array(max)
  for (let i = 0; i < max; i++) {
    const from = Math.floor((i * blocks.count) / max)
    tokens.set(blocks.tokens.subarray(from * row, (from + 1) * row), i * row)
    groupOf[i] = blocks.groupOf[from]!
  }
  return { ...blocks, count: max, tokens, groupOf }
}

type Training = Schema.Struct.Type<typeof TrainingFields>

/** The loop's configuration the (decoded) params mean. */
export const trainConfig = (params: Training): LmTrainConfig => ({
  steps: params.steps,
  batchSize: params.batch_size,
  seed: params.seed,
  optimizer: params.optimizer,
  schedule: params.schedule,
  checkpointEvery: params.checkpoint_every ?? Math.max(1, Math.ceil(params.steps / 4)),
  logEvery: params.log_every
})

/** Loads the stage's token blocks. */
export const blocks = (
  params: Schema.Struct.Type<ReturnType<typeof TextFields>>,
  tokenizer: TextTokenizer.TextTokenizer,
  resolvePath: (p: string) => string,
  options?: { readonly maxBlocksPerGroup?: number }
) => Effect.suspend(() => Packing.load(params.data, params.split, params.groups, tokenizer, params.seq_len, resolvePath, options))
