/**
 * `lm/evaluate`: next-token loss, perplexity and accuracy of a language model on text, per group
 * (Brown's genres, a JSONL `group_field`, named groups of groups) and over all of it, at most
 * `max_blocks` blocks per group.
 *
 * ```yaml
 * eval:
 *   kind: lm/evaluate
 *   inputs: { model: ties }
 *   data: brown
 *   split: test
 *   by: group
 *   seq_len: 128
 *   max_blocks: 64
 * ```
 *
 * Output metrics: `{ dataset, tokens, loss, perplexity, accuracy, groups: { <group>: { tokens,
 * loss, perplexity, accuracy } } }` (`groups` with `by: group`); the loss is the mean over every
 * target token, the perplexity its exp.
 *
 * @since 0.1.0
 */
import { Port, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as TextSource from "../../text/TextSource.ts"
import * as LmConfig from "../LmConfig.ts"
import * as LmEvaluate from "../LmEvaluate.ts"
import * as LmWeights from "../LmWeights.ts"
import * as Fields from "./Fields.ts"
import { LmStageError } from "./LmStageError.ts"

/** @category stage kinds */
export const LmEvaluateKind = Stage.define({
  kind: "lm/evaluate",
  version: 1,
  description: "Next-token loss, perplexity and accuracy of a language model on text, per group and overall.",
  params: Schema.Struct({
    ...Fields.ModelFields,
    ...Fields.TextFields("test", "the documents to evaluate on"),
    by: Schema.Literals(["group", "all"]).annotate({ description: "report each group as well (group), or only the whole (all)" }).pipe(Stage.withDefault<Schema.Literals<readonly ["group", "all"]>>("group")),
    max_blocks: Fields.Positive.annotate({ description: "at most this many blocks per group, spread evenly over it" }).pipe(Stage.withDefault(64)),
    batch_size: Fields.Positive.annotate({ description: "blocks per forward pass" }).pipe(Stage.withDefault(8))
  }),
  reads: (params) => [...TextSource.reads(params.data), ...Fields.modelReads(params)],
  inputs: { model: Port.one(Port.ModelPort, "the language model to evaluate") },
  output: Port.MetricsPort,
  resources: { backend: true },
  run: Effect.fn("LmEvaluate.run")(function* ({ id, params, inputs, resolvePath }) {
    const config = yield* LmConfig.configOf(inputs.model, params.config as string | Record<string, unknown> | undefined, resolvePath)
    yield* Fields.checkPositions(id, params.seq_len, config)
    const tokenizer = yield* Fields.tokenizer(inputs.model, params, resolvePath)
    yield* Fields.checkVocabulary(id, tokenizer, config)
    const blocks = yield* Fields.blocks(params, tokenizer, resolvePath, { maxBlocksPerGroup: params.max_blocks })
    if (blocks.count === 0) {
      return yield* new LmStageError({ stage: id, reason: "InvalidParams", detail: `"${blocks.name}" holds no block of ${params.seq_len + 1} tokens: give more text or a shorter seq_len` })
    }
    // Read once the data is known to hold a block: a refused evaluation reads none of the weights.
    const weights = yield* LmWeights.fromModel(config, inputs.model)
    const scores = yield* LmEvaluate.evaluate(config, weights, blocks, params.batch_size)
    yield* Effect.annotateCurrentSpan({
      "crucible.dataset": blocks.name,
      "crucible.eval.loss": scores.overall.loss,
      "crucible.eval.perplexity": scores.overall.perplexity,
      "crucible.eval.accuracy": scores.overall.accuracy,
      "crucible.eval.tokens": scores.overall.tokens
    })
    return {
      values: {
        dataset: blocks.name,
        ...scores.overall,
        ...(params.by === "group" ? { groups: scores.groups } : {})
      }
    }
  })
})
