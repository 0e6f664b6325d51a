// lm/train on real Brown text through the text loader, with a tiny llama config: the loss falls,
// the same params give the same bytes, a run killed after a checkpoint resumes to the
// uninterrupted run's bytes, a finished run is reused, the model saved as a Hugging Face folder
// and loaded back evaluates the same, and a missing config is a typed error naming the stage.
import { assert, expect, layer } from "@effect/vitest"
import { Stage } from "@crucible/core"
import * as tf from "@tensorflow/tfjs-core"
import { Effect, Exit } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { Backend } from "../../../src/backend/Backend.ts"
import { Load } from "../../../src/io/Load.ts"
import { Save } from "../../../src/io/Save.ts"
import * as LmConfig from "../../../src/lm/LmConfig.ts"
import * as LmTrain from "../../../src/lm/LmTrain.ts"
import * as LmWeights from "../../../src/lm/LmWeights.ts"
import * as Packing from "../../../src/text/Packing.ts"
import * as TextTokenizer from "../../../src/text/TextTokenizer.ts"
import { LmEvaluateKind } from "../../../src/lm/stages/LmEvaluateStage.ts"
import { LmTrainKind } from "../../../src/lm/stages/LmTrainStage.ts"
import { decodeParams } from "../../decodeParams.ts"
import { bytesOf, context, tempDir, tokenizerVocab, writeModelFolder } from "./support.ts"

const dir = tempDir("lm-train")
writeModelFolder(path.join(dir, "tiny"))

const params = decodeParams(LmTrainKind, {
  config: "tiny",
  data: "brown",
  groups: ["news"],
  split: "train",
  seq_len: 32,
  batch_size: 8,
  steps: 40,
  max_blocks: 160,
  log_every: 5,
  checkpoint_every: 10,
  optimizer: { type: "adamw", lr: 0.01, weightDecay: 0.01 },
  schedule: { type: "cosine", warmupSteps: 4 },
  seed: 3
})

/** Runs lm/train, recording the progress reports; `killAfter`: a crash right after that step's report. */
const train = (cacheDir: string, killAfter?: number) =>
  Effect.gen(function* () {
    const reports: Array<Stage.ProgressEvent> = []
    const run = LmTrainKind.run({ ...context(dir, "base", "lm/train", cacheDir), params, inputs: { init: undefined } }).pipe(
      Effect.scoped,
      Effect.provideService(Stage.Progress, {
        report: (event) => Effect.suspend(() => {
          reports.push(event)
          return killAfter !== undefined && event.done >= killAfter ? Effect.die(new Error(`killed after step ${event.done}`)) : Effect.void
        })
      })
    )
    return { exit: yield* Effect.exit(run), reports }
  })

const historyOf = (metadata: Readonly<Record<string, string>>) => JSON.parse(metadata["crucible.lm.history"]!) as Array<{ step: number; loss: number; lr: number }>

layer(Backend.layer())("lm/train", (it) => {
  it.effect("the loss falls; the same params give the same bytes; a killed run resumes to them; a finished run is reused", () =>
    Effect.gen(function* () {
      const first = yield* train(tempDir("lm-cache"))
      assert.isTrue(Exit.isSuccess(first.exit))
      const model = Exit.isSuccess(first.exit) ? first.exit.value : undefined!
      const history = historyOf(model.metadata)
      // An interval ends every 5 steps (log_every) and every 10 (checkpoint_every): 8 records.
      assert.deepStrictEqual(history.map((h) => h.step), [5, 10, 15, 20, 25, 30, 35, 40])
      // From ≈ ln(vocab) (uniform predictions) the first steps move towards the unigram statistics:
      // seen 6.84 over steps 1–5 → 5.85 over steps 36–40; half a nat is far outside any noise.
      expect(history[0]!.loss).toBeLessThan(Math.log(tokenizerVocab()) + 0.1)
      expect(history.at(-1)!.loss).toBeLessThan(history[0]!.loss - 0.5)
      assert.deepStrictEqual(first.reports.map((r) => r.done), [5, 10, 15, 20, 25, 30, 35, 40])
      assert.strictEqual(first.reports[0]!.unit, "steps")
      assert.deepStrictEqual(model.provenance, { folders: [], donor: path.join(dir, "tiny"), methods: ["lm/train"] })
      const expected = yield* bytesOf(model)

      const again = yield* train(tempDir("lm-cache"))
      assert.isTrue(Exit.isSuccess(again.exit))
      if (Exit.isSuccess(again.exit)) assert.isTrue(expected.equals(yield* bytesOf(again.exit.value)), "a second run wrote other bytes")

      // Killed right after step 15's report: the checkpoint of step 10 is the last whole one.
      const cacheDir = tempDir("lm-cache")
      const killed = yield* train(cacheDir, 15)
      assert.isTrue(Exit.isFailure(killed.exit))
      assert.deepStrictEqual(fs.readdirSync(cacheDir).sort(), ["history.json", "step-0000010.safetensors"])
      const resumed = yield* train(cacheDir)
      assert.isTrue(Exit.isSuccess(resumed.exit))
      // It trained steps 11..40 only, and ends with the uninterrupted run's bytes (history included).
      assert.deepStrictEqual(resumed.reports.map((r) => r.done), [15, 20, 25, 30, 35, 40])
      if (Exit.isSuccess(resumed.exit)) assert.isTrue(expected.equals(yield* bytesOf(resumed.exit.value)), "the resumed run wrote other bytes")
      const reused = yield* train(cacheDir)
      assert.deepStrictEqual(reused.reports, [])
      if (Exit.isSuccess(reused.exit)) assert.isTrue(expected.equals(yield* bytesOf(reused.exit.value)), "the reused run wrote other bytes")
    }))

  it.effect("saved with format: hf and loaded back, the model evaluates the same; its folder holds config.json and the tokenizer", () =>
    Effect.gen(function* () {
      const short = decodeParams(LmTrainKind, { config: "tiny", data: "brown", groups: ["news"], seq_len: 16, batch_size: 4, steps: 3, max_blocks: 16, seed: 1 })
      const model = yield* LmTrainKind.run({ ...context(dir, "short", "lm/train"), params: short, inputs: { init: undefined } }).pipe(Effect.scoped)
      yield* Save.run({ ...context(dir, "save", "save"), params: decodeParams(Save, { path: "out/", format: "hf" }), inputs: { model } }).pipe(Effect.scoped)
      const files = fs.readdirSync(path.join(dir, "out"))
      for (const f of ["config.json", "tokenizer.json", "model.safetensors"]) assert.include(files, f)
      const loaded = yield* Load.run({ ...context(dir, "load", "load"), params: decodeParams(Load, { path: "out" }), inputs: {} })
      const evaluate = decodeParams(LmEvaluateKind, { data: "brown", split: "test", groups: ["news", "fiction"], seq_len: 16, max_blocks: 4 })
      const before = yield* LmEvaluateKind.run({ ...context(dir, "eval-a", "lm/evaluate"), params: evaluate, inputs: { model } }).pipe(Effect.scoped)
      const after = yield* LmEvaluateKind.run({ ...context(dir, "eval-b", "lm/evaluate"), params: evaluate, inputs: { model: loaded } }).pipe(Effect.scoped)
      assert.deepStrictEqual(after.values, before.values)
      assert.deepStrictEqual(Object.keys(before.values["groups"] as object), ["news", "fiction"])
    }).pipe(Effect.scoped))

  it.effect("from an inline config (no folder to copy it from), the saved folder still holds config.json — from the model's metadata — and loads back", () =>
    Effect.gen(function* () {
      const inline = JSON.parse(fs.readFileSync(path.join(dir, "tiny", "config.json"), "utf8")) as Record<string, unknown>
      const short = decodeParams(LmTrainKind, { config: inline, tokenizer: "tiny", data: "brown", groups: ["news"], seq_len: 16, batch_size: 4, steps: 2, max_blocks: 8, seed: 2 })
      const model = yield* LmTrainKind.run({ ...context(dir, "inline", "lm/train"), params: short, inputs: { init: undefined } }).pipe(Effect.scoped)
      assert.isUndefined(model.provenance?.donor)
      yield* Save.run({ ...context(dir, "save-inline", "save"), params: decodeParams(Save, { path: "out-inline/", format: "hf" }), inputs: { model } }).pipe(Effect.scoped)
      const written = JSON.parse(fs.readFileSync(path.join(dir, "out-inline", "config.json"), "utf8")) as Record<string, unknown>
      for (const key of ["model_type", "hidden_size", "num_hidden_layers", "vocab_size", "tie_word_embeddings"]) assert.deepStrictEqual(written[key], inline[key], key)
      assert.include(fs.readdirSync(path.join(dir, "out-inline")), "tokenizer.json")
      const loaded = yield* Load.run({ ...context(dir, "load-inline", "load"), params: decodeParams(Load, { path: "out-inline" }), inputs: {} })
      const evaluate = decodeParams(LmEvaluateKind, { data: "brown", split: "test", groups: ["news"], seq_len: 16, max_blocks: 2 })
      const before = yield* LmEvaluateKind.run({ ...context(dir, "eval-inline-a", "lm/evaluate"), params: { ...evaluate, tokenizer: "tiny" }, inputs: { model } }).pipe(Effect.scoped)
      const after = yield* LmEvaluateKind.run({ ...context(dir, "eval-inline-b", "lm/evaluate"), params: evaluate, inputs: { model: loaded } }).pipe(Effect.scoped)
      assert.deepStrictEqual(after.values, before.values)
    }).pipe(Effect.scoped))

  it.effect("no tensor survives a step: the device holds as many tensors at every log as at the first, and none after", () =>
    Effect.gen(function* () {
      const folder = path.join(dir, "tiny")
      const config = yield* LmConfig.read(folder)
      const tokenizer = yield* TextTokenizer.read(folder)
      const blocks = yield* Packing.load("brown", "train", ["news"], tokenizer, 16, (p) => p, { maxBlocksPerGroup: 16 })
      const before = tf.memory().numTensors
      const counts: Array<number> = []
      yield* LmTrain.train(config, LmWeights.init(config, 1), blocks, {
        steps: 6, batchSize: 4, seed: 0, optimizer: { type: "adam", lr: 0.001 }, schedule: { type: "constant" }, checkpointEvery: 3, logEvery: 1
      }, {
        // With a teacher, so the distillation path is counted as well.
        distill: { teachers: [{ config, weights: LmWeights.init(config, 2) }], temperature: 2, alpha: 0.5 },
        onLog: () => Effect.sync(() => counts.push(tf.memory().numTensors))
      })
      assert.strictEqual(counts.length, 6)
      assert.deepStrictEqual(counts, counts.map(() => counts[0]))
      assert.strictEqual(tf.memory().numTensors, before)
    }))

  it.effect("without config and init: an LmStageError naming the stage", () =>
    Effect.gen(function* () {
      const bare = decodeParams(LmTrainKind, { data: "brown", steps: 1 })
      const error = yield* Effect.flip(LmTrainKind.run({ ...context(dir, "nameless", "lm/train"), params: bare, inputs: { init: undefined } }).pipe(Effect.scoped))
      assert.strictEqual(error._tag, "LmStageError")
      expect(error.message).toMatch(/stage "nameless".*config:/)
    }))
})
