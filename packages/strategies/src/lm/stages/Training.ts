/**
 * What `lm/train` and `lm/distill` share around the loop: the student's config, tokenizer and
 * starting weights, the blocks, checkpoints in the stage's cache folder (resume, reuse), the
 * history, progress, and the output model.
 *
 * @since 0.1.0
 */
import { type Model, Stage } from "@crucible/core"
import { Effect } from "effect"
import * as Packing from "../../text/Packing.ts"
import * as TextTokenizer from "../../text/TextTokenizer.ts"
import * as LmCheckpoint from "../LmCheckpoint.ts"
import * as LmConfig from "../LmConfig.ts"
import * as LmTrain from "../LmTrain.ts"
import * as LmWeights from "../LmWeights.ts"
import * as Fields from "./Fields.ts"
import { LmStageError } from "./LmStageError.ts"

/** A training stage's decoded params (lm/train's; lm/distill adds its own). */
export type TrainingParams = Parameters<typeof Fields.trainConfig>[0] & {
  readonly config?: string | Readonly<Record<string, unknown>> | undefined
  readonly tokenizer?: string | undefined
}

/** The stage's student: config, tokenizer, and the effect reading its starting weights. */
export const student = (id: string, kind: string, init: Model.Model | undefined, params: TrainingParams, resolvePath: (p: string) => string) =>
  Effect.gen(function* () {
    if (init === undefined && params.config === undefined) {
      return yield* new LmStageError({
        stage: id,
        reason: "MissingConfig",
        detail: `${kind} without an \`init\` model needs \`config:\` (a folder with config.json and tokenizer.json, a config.json file, or the object inline)`
      })
    }
    const config = yield* LmConfig.configOf(init, params.config as string | Record<string, unknown> | undefined, resolvePath)
    const tokenizer = yield* Fields.tokenizer(init, params, resolvePath)
    yield* Fields.checkVocabulary(id, tokenizer, config)
    yield* Fields.checkPositions(id, params.seq_len, config)
    // Read only when training starts (not on a resume or a reuse).
    const start = init === undefined ? Effect.sync(() => LmWeights.init(config, params.seed)) : LmWeights.fromModel(config, init)
    return { config, tokenizer, start }
  })

/** A teacher's config, refused when its vocabulary is not the student's. */
const teacherConfig = (id: string, teacher: Model.Model, index: number, student: LmConfig.LmConfig, tokenizer: TextTokenizer.TextTokenizer, resolvePath: (p: string) => string) =>
  Effect.gen(function* () {
    const config = yield* LmConfig.configOf(teacher, undefined, resolvePath)
    const mismatch = (detail: string) =>
      new LmStageError({ stage: id, reason: "VocabularyMismatch", detail: `teacher ${index} (${teacher.source}) ${detail}: distillation compares next-token distributions, so the teachers need the student's tokenizer` })
    if (config.vocabSize !== student.vocabSize) return yield* mismatch(`has vocab_size ${config.vocabSize}, the student ${student.vocabSize}`)
    // A teacher whose tokenizer can be found must have the student's number of tokens.
    const own = yield* Effect.option(TextTokenizer.tokenizerOf(teacher, undefined, resolvePath))
    if (own._tag === "Some" && own.value.vocabSize !== tokenizer.vocabSize) return yield* mismatch(`has a tokenizer of ${own.value.vocabSize} tokens (${own.value.source}), the student's ${tokenizer.vocabSize} (${tokenizer.source})`)
    return config
  })

/**
 * Trains (or resumes, or reuses a finished run from `cacheDir`) and returns the output model:
 * Hugging Face names, the config in the metadata, the history (no timings) and the provenance.
 */
export const run = (
  context: { readonly id: string; readonly kind: string; readonly cacheDir: string; readonly resolvePath: (p: string) => string },
  init: Model.Model | undefined,
  params: TrainingParams,
  distill?: { readonly teachers: ReadonlyArray<Model.Model>; readonly temperature: number; readonly alpha: number }
) => Effect.gen(function* () {
  const { id, kind, cacheDir, resolvePath } = context
  const { config, tokenizer, start } = yield* student(id, kind, init, params, resolvePath)
  // The teachers are checked before anything is loaded, so a mismatch fails at once.
  const teacherConfigs = yield* Effect.forEach(distill?.teachers ?? [], (teacher, i) => teacherConfig(id, teacher, i, config, tokenizer, resolvePath))
  const name = Packing.nameOf(params.data, params.split, params.groups)
  const run = Fields.trainConfig(params)
  const checkpoint = yield* LmCheckpoint.latest(config, cacheDir)
  const history: Array<LmCheckpoint.StepRecord> = checkpoint?.history ?? []
  const output = (final: LmWeights.LmWeights): Model.Model => {
    const model = LmWeights.toModel(config, final, `${id} (${kind})`, {
      "crucible.lm.history": JSON.stringify(history),
      "crucible.lm.data": name
    })
    const provenance = Fields.trainedProvenance(kind, init, params, resolvePath)
    return provenance === undefined ? model : { ...model, provenance }
  }
  if (checkpoint !== undefined && checkpoint.state.step >= run.steps) {
    yield* Stage.event("train.reused", { step: checkpoint.state.step, checkpoint: checkpoint.file })
    return output(checkpoint.state.weights)
  }
  if (checkpoint !== undefined) yield* Stage.event("train.resumed", { step: checkpoint.state.step, checkpoint: checkpoint.file })
  const data = Fields.cap(yield* Fields.blocks(params, tokenizer, resolvePath), params.max_blocks)
  yield* Effect.annotateCurrentSpan({ "crucible.dataset": data.name, "crucible.lm.blocks": data.count, "crucible.lm.model_type": config.modelType })
  const distillation = distill === undefined ? undefined : {
    teachers: yield* Effect.forEach(distill.teachers, (teacher, i) =>
      Effect.map(LmWeights.fromModel(teacherConfigs[i]!, teacher), (weights) => ({ config: teacherConfigs[i]!, weights }))),
    temperature: distill.temperature,
    alpha: distill.alpha
  }
  const final = yield* LmTrain.train(config, checkpoint?.state.weights ?? (yield* start), data, run, {
    ...(checkpoint === undefined ? {} : { resume: checkpoint.state }),
    ...(distillation === undefined ? {} : { distill: distillation }),
    onLog: (report) =>
      Effect.gen(function* () {
        const record = { step: report.step, loss: report.loss, lr: report.lr }
        history.push(record)
        if (report.checkpoint !== undefined) yield* LmCheckpoint.save(config, report.checkpoint, cacheDir, history)
        yield* Stage.event("train.step", { ...record, tokensPerSecond: report.tokensPerSecond })
        yield* Stage.recordEpoch(id, { epoch: report.step, loss: report.loss })
        yield* Stage.reportProgress({
          stage: id, done: report.step, total: run.steps, unit: "steps",
          detail: `loss ${report.loss.toFixed(4)} · ${Math.round(report.tokensPerSecond)} tok/s`
        })
      })
  })
  return output(final.weights)
})
