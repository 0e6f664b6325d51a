/**
 * `lm/distill`: trains a student language model to match one teacher or an ensemble of teachers
 * (their next-token distributions at temperature T, averaged) mixed with the next-token loss:
 * `(1 − α)·CE + α·T²·KL(p̄_teachers ‖ softmax(z/T))`. The student starts from `init` or a fresh
 * `config:`; the teachers must share its tokenizer (vocabulary). Training params, checkpoints,
 * resumption and the output are `lm/train`'s.
 *
 * ```yaml
 * student:
 *   kind: lm/distill
 *   inputs: { teachers: [press, fiction], init: base }
 *   temperature: 2
 *   alpha: 0.5
 *   data: brown
 *   steps: 200
 * ```
 *
 * @since 0.1.0
 */
import { Port, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as TextSource from "../../text/TextSource.ts"
import * as Fields from "./Fields.ts"
import * as Training from "./Training.ts"

/** @category stage kinds */
export const LmDistillKind = Stage.define({
  kind: "lm/distill",
  version: 1,
  description: "Distils one or more teacher language models (mean of their tempered distributions) into a student; checkpointed, resumable.",
  reference: "https://arxiv.org/abs/1503.02531",
  params: Schema.Struct({
    ...Fields.ModelFields,
    ...Fields.TrainingFields,
    temperature: Schema.Finite.check(Schema.isGreaterThan(0)).annotate({ description: "T, the temperature of the soft targets" }).pipe(Stage.withDefault(2)),
    alpha: Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 })).annotate({ description: "α, the weight of the distillation term against the next-token loss" }).pipe(Stage.withDefault(0.5))
  }),
  reads: (params) => [...TextSource.reads(params.data), ...Fields.modelReads(params)],
  inputs: {
    teachers: Port.many(Port.ModelPort, { min: 1, description: "the teachers; their tempered distributions are averaged" }),
    init: Port.optional(Port.ModelPort, "start the student from these weights instead of a fresh initialisation")
  },
  output: Port.ModelPort,
  resources: { backend: true },
  run: Effect.fn("LmDistill.run")(function* ({ id, kind, params, inputs, resolvePath, cacheDir }) {
    return yield* Training.run({ id, kind, cacheDir, resolvePath }, inputs.init, params, {
      teachers: inputs.teachers,
      temperature: params.temperature,
      alpha: params.alpha
    })
  })
})
