/**
 * `lm/train`: trains a causal language model (GPT-2 or LLaMA family, from a Hugging Face
 * config.json) on text by next-token prediction, from a seeded fresh initialisation (`config:`)
 * or from an `init` model. Seeded: the same params give the same bytes. Checkpointed in the
 * stage's cache folder (a quarter of the steps apart by default): an interrupted run resumes from
 * its last checkpoint and ends with the uninterrupted run's bytes; a finished one is reused.
 *
 * ```yaml
 * base:
 *   kind: lm/train
 *   config: tiny-llama        # folder with config.json and tokenizer.json
 *   data: brown
 *   groups: [news, learned]
 *   seq_len: 128
 *   batch_size: 16
 *   steps: 400
 *   optimizer: { type: adamw, lr: 0.003, weightDecay: 0.01 }
 *   schedule: { type: cosine, warmupSteps: 20 }
 * ```
 *
 * The output has the Hugging Face tensor names, the config in its metadata
 * (`crucible.lm.config`), the logged history `crucible.lm.history` ({ step, loss, lr }), and the
 * config folder (or the init's) as its provenance's donor, so `save` with `format: hf` writes a
 * folder `load` reads back.
 *
 * @since 0.1.0
 */
import { Port, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as TextSource from "../../text/TextSource.ts"
import * as Fields from "./Fields.ts"
import * as Training from "./Training.ts"

/** @category stage kinds */
export const LmTrainKind = Stage.define({
  kind: "lm/train",
  version: 1,
  description: "Trains a causal language model (GPT-2 / LLaMA family) on text by next-token prediction (seeded, checkpointed, resumable).",
  params: Schema.Struct({
    ...Fields.ModelFields,
    ...Fields.TrainingFields
  }),
  reads: (params) => [...TextSource.reads(params.data), ...Fields.modelReads(params)],
  inputs: { init: Port.optional(Port.ModelPort, "start from these weights instead of a fresh initialisation") },
  output: Port.ModelPort,
  resources: { backend: true },
  run: Effect.fn("LmTrain.run")(function* ({ id, kind, params, inputs, resolvePath, cacheDir }) {
    return yield* Training.run({ id, kind, cacheDir, resolvePath }, inputs.init, params)
  })
})
