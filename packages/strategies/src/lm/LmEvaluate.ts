/**
 * Next-token scores of a language model on token blocks: per group and over all blocks, the mean
 * loss over every target token (−log p of the next token), the perplexity `exp(loss)` and the
 * next-token accuracy (argmax of the logits equals the next token). The device computes each
 * position's loss and hit; sums are kept in float64 on the host; reads are asynchronous.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import type * as Packing from "../text/Packing.ts"
import type { LmConfig } from "./LmConfig.ts"
import type { LmWeights } from "./LmWeights.ts"
import { LmBackendError } from "./LmError.ts"
import * as Ops from "./Ops.ts"
import * as Transformer from "./Transformer.ts"

/** The scores of a set of blocks. @category models */
export interface Score {
  /** Target tokens scored. */
  readonly tokens: number
  readonly loss: number
  readonly perplexity: number
  readonly accuracy: number
}

/** Scores over all blocks and per group (every group of `blocks.groups` that has a block). @category models */
export interface Scores {
  readonly overall: Score
  readonly groups: Readonly<Record<string, Score>>
}

interface Sums { tokens: number; loss: number; hits: number }

const score = (s: Sums): Score => {
  const loss = s.tokens === 0 ? Number.NaN : s.loss / s.tokens
  return { tokens: s.tokens, loss, perplexity: Math.exp(loss), accuracy: s.tokens === 0 ? Number.NaN : s.hits / s.tokens }
}

/**
 * Per position of a batch: the loss `−log softmax(z)[y] = log Σ exp(z − max) − (z_y − max)` and
 * whether `argmax z = y`, `[B, T]` each: the loss is `Ops.tokenLosses` (the training loss's), the
 * figures those of `−Σ onehot·logSoftmax(z)` to the bit (the same shift and sum, and `−(a − b) = b − a` exactly).
 */
export const positionScores = (logits: tf.Tensor3D, targets: tf.Tensor2D): { readonly loss: tf.Tensor2D; readonly hit: tf.Tensor2D } =>
  tf.tidy(() => {
    const [b, t, v] = logits.shape
    const { losses } = Ops.tokenLosses(tf.reshape(logits, [b * t, v]), tf.reshape(targets, [-1]))
    const loss = tf.reshape(losses, [b, t]) as tf.Tensor2D
    const hit = tf.cast(tf.equal(tf.argMax(logits, -1), targets), "float32") as tf.Tensor2D
    return { loss, hit }
  })

/** Scores `weights` on `blocks`, `batchSize` blocks per forward pass. */
export const evaluate = (config: LmConfig, weights: LmWeights, blocks: Packing.TokenBlocks, batchSize: number) =>
  Effect.gen(function* () {
    const failure = LmBackendError.of("evaluating")
    const device = yield* Effect.acquireRelease(
      Effect.try({ try: () => Transformer.upload(config, weights, { trainable: false }), catch: failure }),
      (d) => Effect.sync(() => d.dispose())
    )
    const seqLen = blocks.seqLen
    const row = seqLen + 1
    const sums = blocks.groups.map((): Sums => ({ tokens: 0, loss: 0, hits: 0 }))
    for (let first = 0; first < blocks.count; first += batchSize) {
      const n = Math.min(batchSize, blocks.count - first)
      const inputs = new Int32Array(n * seqLen)
      const targets = new Int32Array(n * seqLen)
      for (let i = 0; i < n; i++) {
        const from = (first + i) * row
        inputs.set(blocks.tokens.subarray(from, from + seqLen), i * seqLen)
        targets.set(blocks.tokens.subarray(from + 1, from + row), i * seqLen)
      }
      const { loss, hit } = yield* Effect.try({
        try: () =>
          tf.tidy(() => {
            const ys = tf.tensor2d(targets, [n, seqLen], "int32")
            return positionScores(Transformer.logits(device, tf.tensor2d(inputs, [n, seqLen], "int32")), ys)
          }),
        catch: failure
      })
      const [losses, hits] = yield* Effect.tryPromise({ try: () => Promise.all([loss.data(), hit.data()]), catch: failure }).pipe(
        Effect.ensuring(Effect.sync(() => { loss.dispose(); hit.dispose() }))
      )
      for (let i = 0; i < n; i++) {
        const s = sums[blocks.groupOf[first + i]!]!
        for (let t = 0; t < seqLen; t++) {
          s.loss += losses[i * seqLen + t]!
          s.hits += hits[i * seqLen + t]!
        }
        s.tokens += seqLen
      }
      yield* Effect.yieldNow
    }
    const total = sums.reduce((a, s) => ({ tokens: a.tokens + s.tokens, loss: a.loss + s.loss, hits: a.hits + s.hits }), { tokens: 0, loss: 0, hits: 0 })
    const groups: Record<string, Score> = {}
    blocks.groups.forEach((g, i) => { if (sums[i]!.tokens > 0) groups[g] = score(sums[i]!) })
    const scores: Scores = { overall: score(total), groups }
    return scores
  }).pipe(Effect.scoped, Effect.withSpan("LmEvaluate.evaluate", { attributes: { "crucible.dataset": blocks.name, "crucible.lm.blocks": blocks.count } }))
