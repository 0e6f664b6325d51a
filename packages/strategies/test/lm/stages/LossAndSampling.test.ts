// The pieces of the LM stages that need no model: the 3-D distillation loss (value and gradient
// against float64 finite differences), the block order (a function of seed and step only), and
// the sampling rule of lm/generate.
import { assert, describe, expect, it, layer } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import { Backend } from "../../../src/backend/Backend.ts"
import * as Generate from "../../../src/lm/Generate.ts"
import * as LmTrain from "../../../src/lm/LmTrain.ts"
import { labels, uniform, worstError } from "../../models/fixtures.ts"
import * as Kd64 from "../../support/Kd64.ts"

const B = 2
const T = 3
const V = 5
const N = B * T

const softmax64 = (z: ArrayLike<number>, row: number, t: number): Array<number> => Kd64.softmax64(z, row, V, t)

/** (1 − α)·CE + α·T²·KL(p̄ ‖ softmax(z/T)), mean over the B·T positions, in float64 from the definitions. */
const loss64 = (z: ArrayLike<number>, p: ReadonlyArray<ReadonlyArray<number>>, y: Int32Array, t: number, alpha: number): number => Kd64.hinton64(z, V, p, y, t, alpha)

layer(Backend.layer())("LM distillation loss", (it) => {
  it.effect("value and gradient equal float64 (finite differences) for an ensemble of two teachers, several T and α", () =>
    Effect.gen(function* () {
      const before = tf.memory().numTensors
      for (const [t, alpha, seed] of [[2, 0.5, 1], [1, 1, 2], [4, 0, 3], [3, 0.9, 4]] as const) {
        const z = uniform(seed, N * V, -3, 3)
        const teachers = [uniform(seed + 10, N * V, -4, 4), uniform(seed + 11, N * V, -4, 4)]
        // The ensemble's target: the mean of the teachers' tempered distributions.
        const p = Array.from({ length: N }, (_, n) => {
          const a = softmax64(teachers[0]!, n, t)
          const b = softmax64(teachers[1]!, n, t)
          return a.map((v, k) => (v + b[k]!) / 2)
        })
        const y = labels(seed + 20, N, V)
        const v = tf.tidy(() => tf.variable(tf.tensor3d(z, [B, T, V])))
        const { value, grad } = tf.tidy(() => {
          const out = tf.variableGrads(() => LmTrain.distillLoss(v as unknown as tf.Tensor3D, tf.tensor3d(p.flat(), [B, T, V]), tf.tensor2d(y, [B, T], "int32"), { temperature: t, alpha }), [v])
          return { value: out.value.dataSync()[0]!, grad: Float32Array.from(out.grads[v.name]!.dataSync() as Float32Array) }
        })
        v.dispose()
        // float32 softmax/log over 5 classes: ~1e-6 relative error; the finite differences (h = 1e-6, float64) ~1e-9.
        expect(Math.abs(value - loss64(z, p, y, t, alpha))).toBeLessThan(1e-5 * Math.max(1, Math.abs(value)))
        expect(worstError(grad, Kd64.numericGrad(z, (zz) => loss64(zz, p, y, t, alpha)), 1e-6, 1e-4)).toBeLessThan(1)
      }
      assert.strictEqual(tf.memory().numTensors, before)
    })
  )
})

describe("block order", () => {
  it("every block once per epoch, a function of (seed, step) only, different seeds different orders", () => {
    const count = 10
    const batch = 4
    // Steps 0..4 cover positions 0..19: epochs 0 and 1, each a permutation of the 10 blocks.
    const stream = Array.from({ length: 5 }, (_, s) => Array.from(LmTrain.batchBlocks(count, batch, 7, s))).flat()
    assert.deepStrictEqual([...stream.slice(0, 10)].sort((a, b) => a - b), Array.from({ length: 10 }, (_, i) => i))
    assert.deepStrictEqual([...stream.slice(10, 20)].sort((a, b) => a - b), Array.from({ length: 10 }, (_, i) => i))
    assert.deepStrictEqual(Array.from(LmTrain.batchBlocks(count, batch, 7, 3)), stream.slice(12, 16))
    assert.notDeepEqual(Array.from(LmTrain.batchBlocks(count, batch, 8, 0)), stream.slice(0, 4))
  })

  it("a log interval ends at every log and checkpoint step and at the last", () => {
    const config = { steps: 23, logEvery: 10, checkpointEvery: 6 }
    const ends = Array.from({ length: 23 }, (_, i) => i + 1).filter((s) => LmTrain.logsAt(config, s))
    assert.deepStrictEqual(ends, [6, 10, 12, 18, 20, 23])
    assert.deepStrictEqual(ends.filter((s) => LmTrain.checkpointsAt(config, s)), [6, 12, 18, 23])
  })
})

describe("sampling", () => {
  const logits = Float32Array.from([0.5, 2, -1, 2, 1])

  it("greedy is the argmax, the first on ties", () => {
    assert.strictEqual(Generate.pick(logits, { temperature: 0 }, 0.99), 1)
  })

  it("a draw picks by the cumulative probabilities of softmax(z/T) over the top k (ties by index)", () => {
    const t = 0.7
    // float64 reference: the top 3 are 1, 3 (tie at 2, index order), 4.
    const kept = [1, 3, 4]
    const w = kept.map((i) => Math.exp(logits[i]! / t))
    const total = w.reduce((a, b) => a + b, 0)
    const c1 = w[0]! / total
    const c2 = c1 + w[1]! / total
    assert.strictEqual(Generate.pick(logits, { temperature: t, topK: 3 }, c1 - 1e-9), 1)
    assert.strictEqual(Generate.pick(logits, { temperature: t, topK: 3 }, c1 + 1e-9), 3)
    assert.strictEqual(Generate.pick(logits, { temperature: t, topK: 3 }, c2 + 1e-9), 4)
    assert.strictEqual(Generate.pick(logits, { temperature: t, topK: 1 }, 0.999), 1)
    // Without top_k every token can be drawn: the last ones by the tail of the cumulative sum.
    assert.strictEqual(Generate.pick(logits, { temperature: t }, 0.999999), 2)
  })
})
