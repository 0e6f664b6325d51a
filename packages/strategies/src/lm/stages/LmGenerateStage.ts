/**
 * `lm/generate`: continuations of prompts by a language model, greedy (`temperature: 0`) or
 * sampled (seeded: the same params give the same text), up to `max_new_tokens` or the
 * end-of-sequence token.
 *
 * ```yaml
 * gen:
 *   kind: lm/generate
 *   inputs: { model: ties }
 *   prompts: ["The jury said"]
 *   max_new_tokens: 24
 *   temperature: 0
 * ```
 *
 * Output metrics: `{ samples: [{ prompt, continuation, ids }] }` (`ids`: the continuation's).
 *
 * @since 0.1.0
 */
import { Port, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as Generate from "../Generate.ts"
import * as LmConfig from "../LmConfig.ts"
import { LmBackendError } from "../LmError.ts"
import * as LmWeights from "../LmWeights.ts"
import * as Transformer from "../Transformer.ts"
import * as Fields from "./Fields.ts"
import { LmStageError } from "./LmStageError.ts"

/** @category stage kinds */
export const LmGenerateKind = Stage.define({
  kind: "lm/generate",
  version: 1,
  description: "Continues prompts with a language model: greedy or seeded sampling.",
  params: Schema.Struct({
    ...Fields.ModelFields,
    prompts: Schema.Array(Schema.String).annotate({ description: "the texts to continue" }),
    max_new_tokens: Fields.Positive.annotate({ description: "tokens to generate per prompt (fewer at end-of-sequence)" }).pipe(Stage.withDefault(32)),
    temperature: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)).annotate({ description: "0: greedy; above: sample from softmax(z/T)" }).pipe(Stage.withDefault(0)),
    top_k: Schema.optional(Fields.Positive.annotate({ description: "sample among the k most likely tokens" })),
    seed: Schema.Int.annotate({ description: "the sampling draws" }).pipe(Stage.withDefault(0))
  }),
  reads: (params) => Fields.modelReads(params),
  inputs: { model: Port.one(Port.ModelPort, "the language model") },
  output: Port.MetricsPort,
  resources: { backend: true },
  run: Effect.fn("LmGenerate.run")(function* ({ id, params, inputs, resolvePath }) {
    const config = yield* LmConfig.configOf(inputs.model, params.config as string | Record<string, unknown> | undefined, resolvePath)
    const tokenizer = yield* Fields.tokenizer(inputs.model, params, resolvePath)
    yield* Fields.checkVocabulary(id, tokenizer, config)
    const weights = yield* LmWeights.fromModel(config, inputs.model)
    const prompts = params.prompts.map((text) => ({ text, ids: tokenizer.encode(text) }))
    const empty = prompts.find((p) => p.ids.length === 0 && tokenizer.bos === undefined)
    if (empty !== undefined) return yield* new LmStageError({ stage: id, reason: "InvalidParams", detail: `prompt ${JSON.stringify(empty.text)} encodes to no token and the tokenizer has no BOS to start from` })
    const device = yield* Effect.acquireRelease(
      Effect.try({ try: () => Transformer.upload(config, weights, { trainable: false }), catch: LmBackendError.of("generating") }),
      (d) => Effect.sync(() => d.dispose())
    )
    const options: Generate.GenerateOptions = { maxNewTokens: params.max_new_tokens, temperature: params.temperature, topK: params.top_k, seed: params.seed, eos: tokenizer.eos }
    const samples = yield* Effect.forEach(prompts, (prompt, i) =>
      Effect.map(Generate.generate(device, prompt.ids.length === 0 ? Int32Array.of(tokenizer.bos!) : prompt.ids, options, i), (ids) => ({
        prompt: prompt.text,
        continuation: tokenizer.decode(ids),
        ids: Array.from(ids)
      })))
    yield* Effect.annotateCurrentSpan({ "crucible.lm.prompts": prompts.length, "crucible.lm.temperature": params.temperature })
    return { values: { samples } }
  }, Effect.scoped)
})
