import { assert, expect, layer } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import { Backend } from "../../src/backend/Backend.ts"
import * as Loss from "../../src/train/Loss.ts"
import { labels, uniform, worstError } from "../models/fixtures.ts"

const N = 5
const K = 4

const softmax64 = (z: ArrayLike<number>, row: number, temperature: number): Array<number> => {
  const xs = Array.from({ length: K }, (_, k) => z[row * K + k]! / temperature)
  const max = Math.max(...xs)
  const e = xs.map((x) => Math.exp(x - max))
  const s = e.reduce((a, b) => a + b, 0)
  return e.map((v) => v / s)
}

/** Value and gradient of a loss op at `z`, through the tape. */
const valueAndGrad = (z: Float32Array, loss: (logits: tf.Tensor2D) => tf.Scalar) => {
  const v = tf.tidy(() => tf.variable(tf.tensor2d(z, [N, K])))
  const out = tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => loss(v as unknown as tf.Tensor2D), [v])
    return { value: value.dataSync()[0]!, grad: Float32Array.from(grads[v.name]!.dataSync() as Float32Array) }
  })
  v.dispose()
  return out
}

layer(Backend.layer())("losses against float64 references", (it) => {
  it.effect("softmax cross-entropy: value and gradient (softmax − onehot)/N", () =>
    Effect.gen(function* () {
      const z = uniform(1, N * K, -3, 3)
      const y = labels(2, N, K)
      const target = tf.tensor1d(y, "int32")
      const { value, grad } = valueAndGrad(z, (logits) => Loss.softmaxCrossEntropy(logits, target))
      target.dispose()
      let want = 0
      const wantGrad = new Float64Array(N * K)
      for (let n = 0; n < N; n++) {
        const p = softmax64(z, n, 1)
        want -= Math.log(p[y[n]!]!) / N
        for (let k = 0; k < K; k++) wantGrad[n * K + k] = (p[k]! - (k === y[n] ? 1 : 0)) / N
      }
      expect(Math.abs(value - want)).toBeLessThan(1e-6)
      expect(worstError(grad, wantGrad, 1e-7, 1e-5)).toBeLessThan(1)
    })
  )

  it.effect("soft-target cross-entropy at temperature T (×T²) and mixing: values and gradients", () =>
    Effect.gen(function* () {
      const before = tf.memory().numTensors
      const z = uniform(3, N * K, -3, 3)
      const teacher = uniform(4, N * K, -3, 3)
      const T = 4
      const p = Array.from({ length: N }, (_, n) => softmax64(teacher, n, T))
      const targets = tf.tensor2d(p.flat(), [N, K])
      const y = labels(5, N, K)
      const hard = tf.tensor1d(y, "int32")
      const alpha = 0.9
      const { value, grad } = valueAndGrad(z, (logits) => Loss.mix(Loss.softTargetCrossEntropy(logits, targets, T), Loss.softmaxCrossEntropy(logits, hard), alpha))
      tf.dispose([targets, hard])
      const f = (zz: ArrayLike<number>) => {
        let soft = 0
        let ce = 0
        for (let n = 0; n < N; n++) {
          const q = softmax64(zz, n, T)
          for (let k = 0; k < K; k++) soft -= (p[n]![k]! * Math.log(q[k]!)) / N
          ce -= Math.log(softmax64(zz, n, 1)[y[n]!]!) / N
        }
        return alpha * T * T * soft + (1 - alpha) * ce
      }
      expect(Math.abs(value - f(z))).toBeLessThan(1e-5)
      const z64 = Float64Array.from(z)
      const numeric = Array.from(z64, (_, i) => {
        const h = 1e-6
        const up = Float64Array.from(z64)
        up[i]! += h
        const down = Float64Array.from(z64)
        down[i]! -= h
        return (f(up) - f(down)) / (2 * h)
      })
      expect(worstError(grad, numeric, 1e-6, 1e-4)).toBeLessThan(1)
      assert.strictEqual(tf.memory().numTensors, before)
    })
  )

  it.effect("mean squared error against a constant target: value and gradient 2(a − t)/size", () =>
    Effect.gen(function* () {
      const z = uniform(6, N * K)
      const t = uniform(7, N * K)
      const target = tf.tensor2d(t, [N, K])
      const { value, grad } = valueAndGrad(z, (a) => Loss.meanSquaredError(a, target))
      target.dispose()
      let want = 0
      for (let i = 0; i < N * K; i++) want += (z[i]! - t[i]!) ** 2 / (N * K)
      expect(Math.abs(value - want)).toBeLessThan(1e-6)
      expect(worstError(grad, Array.from(z, (v, i) => (2 * (v - t[i]!)) / (N * K)), 1e-7, 1e-5)).toBeLessThan(1)
    })
  )
})
