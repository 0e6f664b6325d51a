// lm/evaluate against a float64 computation from the model's logits on the same Brown blocks:
// per group and overall, the mean next-token loss over every target token, its exp, and the
// next-token accuracy; `by: all` reports the whole only.
import { assert, expect, layer } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import * as path from "node:path"
import { Backend } from "../../../src/backend/Backend.ts"
import * as LmConfig from "../../../src/lm/LmConfig.ts"
import * as LmWeights from "../../../src/lm/LmWeights.ts"
import * as Transformer from "../../../src/lm/Transformer.ts"
import { LmEvaluateKind } from "../../../src/lm/stages/LmEvaluateStage.ts"
import * as Packing from "../../../src/text/Packing.ts"
import * as TextTokenizer from "../../../src/text/TextTokenizer.ts"
import { decodeParams } from "../../decodeParams.ts"
import { context, tempDir, writeModelFolder } from "./support.ts"

const dir = tempDir("lm-evaluate")
const folder = writeModelFolder(path.join(dir, "tiny"))

interface Sums { tokens: number; loss: number; hits: number }

/** Per group: Σ −log softmax(z)[y] and Σ [argmax z = y] in float64 from the float32 logits. */
const reference = (logits: Float32Array, blocks: Packing.TokenBlocks, v: number): Array<Sums> => {
  const sums = blocks.groups.map(() => ({ tokens: 0, loss: 0, hits: 0 }))
  const T = blocks.seqLen
  for (let b = 0; b < blocks.count; b++) {
    const s = sums[blocks.groupOf[b]!]!
    for (let t = 0; t < T; t++) {
      const row = logits.subarray((b * T + t) * v, (b * T + t + 1) * v)
      const target = blocks.tokens[b * (T + 1) + t + 1]!
      let max = -Infinity
      let arg = 0
      for (let k = 0; k < v; k++) if (row[k]! > max) { max = row[k]!; arg = k }
      let sum = 0
      for (let k = 0; k < v; k++) sum += Math.exp(row[k]! - max)
      s.loss += -(row[target]! - max - Math.log(sum))
      s.hits += arg === target ? 1 : 0
      s.tokens++
    }
  }
  return sums
}

layer(Backend.layer())("lm/evaluate", (it) => {
  it.effect("per group and overall: loss, perplexity and accuracy equal a float64 computation from the logits", () =>
    Effect.gen(function* () {
      const config = yield* LmConfig.read(folder)
      const weights = LmWeights.init(config, 5)
      const model = { ...LmWeights.toModel(config, weights, "init"), provenance: { folders: [], donor: folder, methods: [] } }
      const params = decodeParams(LmEvaluateKind, { data: "brown", split: "test", groups: ["news", "fiction"], seq_len: 16, max_blocks: 3, batch_size: 6 })
      const metrics = yield* LmEvaluateKind.run({ ...context(dir, "eval", "lm/evaluate"), params, inputs: { model } })

      const tokenizer = yield* TextTokenizer.read(folder)
      const blocks = yield* Packing.load("brown", "test", ["news", "fiction"], tokenizer, 16, (p) => p, { maxBlocksPerGroup: 3 })
      assert.strictEqual(blocks.count, 6)
      // The stage's one batch of 6 blocks, so the logits are the same bits.
      const device = Transformer.upload(config, weights, { trainable: false })
      const logits = tf.tidy(() => Transformer.logits(device, tf.tensor2d(Array.from({ length: 6 }, (_, b) => Array.from(blocks.tokens.subarray(b * 17, b * 17 + 16))), [6, 16], "int32")))
      const sums = reference(Float32Array.from(yield* Effect.promise(() => logits.data() as Promise<Float32Array>)), blocks, config.vocabSize)
      logits.dispose()
      device.dispose()

      const check = (got: Record<string, unknown>, s: Sums) => {
        const loss = s.loss / s.tokens
        assert.strictEqual(got["tokens"], s.tokens)
        // float32 log-softmax per token (~1e-7 relative) averaged: within 1e-5 of the float64 mean.
        expect(Math.abs((got["loss"] as number) - loss)).toBeLessThan(1e-5 * loss)
        expect(Math.abs((got["perplexity"] as number) - Math.exp(loss))).toBeLessThan(1e-4 * Math.exp(loss))
        // The same logits: the same argmaxes.
        assert.strictEqual(got["accuracy"], s.hits / s.tokens)
      }
      const values = metrics.values as Record<string, unknown>
      assert.strictEqual(values["dataset"], "brown/test[news,fiction]")
      const groups = values["groups"] as Record<string, Record<string, unknown>>
      assert.deepStrictEqual(Object.keys(groups), ["news", "fiction"])
      check(groups["news"]!, sums[0]!)
      check(groups["fiction"]!, sums[1]!)
      check(values, { tokens: sums[0]!.tokens + sums[1]!.tokens, loss: sums[0]!.loss + sums[1]!.loss, hits: sums[0]!.hits + sums[1]!.hits })
      // An untrained model: near-uniform predictions, perplexity near the vocabulary size.
      expect(values["perplexity"] as number).toBeGreaterThan(0.5 * config.vocabSize)

      const whole = yield* LmEvaluateKind.run({ ...context(dir, "eval-all", "lm/evaluate"), params: { ...params, by: "all" as const }, inputs: { model } })
      assert.isUndefined((whole.values as Record<string, unknown>)["groups"])
      assert.strictEqual((whole.values as Record<string, unknown>)["loss"], values["loss"])
    }).pipe(Effect.scoped))

  it.effect("seq_len beyond the model's positions: an LmStageError naming the stage", () =>
    Effect.gen(function* () {
      const config = yield* LmConfig.read(folder)
      const model = { ...LmWeights.toModel(config, LmWeights.init(config, 1), "init"), provenance: { folders: [], donor: folder, methods: [] } }
      const params = decodeParams(LmEvaluateKind, { data: "brown", seq_len: 65 })
      const error = yield* Effect.flip(LmEvaluateKind.run({ ...context(dir, "too-long", "lm/evaluate"), params, inputs: { model } }).pipe(Effect.scoped))
      assert.strictEqual(error._tag, "LmStageError")
      expect(error.message).toMatch(/stage "too-long".*seq_len 65.*64 positions/)
    }))

  it.effect("a tokenizer larger than the model's vocabulary: a VocabularyMismatch before any block is scored", () =>
    Effect.gen(function* () {
      // vocab_size one row short of the tokenizer: the wasm gather would read past the table, so the stage refuses.
      const small = writeModelFolder(path.join(dir, "small-vocab"), { vocab_size: 2047 })
      const config = yield* LmConfig.read(small)
      const model = { ...LmWeights.toModel(config, LmWeights.init(config, 1), "init"), provenance: { folders: [], donor: small, methods: [] } }
      const params = decodeParams(LmEvaluateKind, { data: "brown", seq_len: 16, max_blocks: 1 })
      const error = yield* Effect.flip(LmEvaluateKind.run({ ...context(dir, "small", "lm/evaluate"), params, inputs: { model } }).pipe(Effect.scoped))
      assert.strictEqual(error._tag, "LmStageError")
      expect(error.message).toMatch(/stage "small".*2048 tokens.*vocab_size is 2047/)
    }))
})
