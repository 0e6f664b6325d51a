import { assert, expect, layer } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import { Backend } from "../../src/backend/Backend.ts"
import * as KdLoss from "../../src/distill/KdLoss.ts"
import { labels, uniform, worstError } from "../models/fixtures.ts"
import * as Kd64 from "../support/Kd64.ts"

const N = 6
const K = 5

const softmax64 = (z: ArrayLike<number>, row: number, t: number): Array<number> => Kd64.softmax64(z, row, K, t)

/** α·T²·KL(p ‖ softmax(z/T)) + (1 − α)·CE(y, z), mean over rows, in float64. */
const hinton64 = (z: ArrayLike<number>, p: ReadonlyArray<ReadonlyArray<number>>, y: Int32Array, t: number, alpha: number): number => Kd64.hinton64(z, K, p, y, t, alpha)

/**
 * Value and gradient of `loss` at `z` through the tape; the constants are created inside the
 * differentiated function, as the training loop does (they are disposed before the backward pass).
 */
const valueAndGrad = (z: Float32Array, shape: [number, number], loss: (x: tf.Tensor2D) => tf.Scalar) => {
  const v = tf.tidy(() => tf.variable(tf.tensor2d(z, shape)))
  const out = tf.tidy(() => {
    const { value, grads } = tf.variableGrads(() => loss(v as unknown as tf.Tensor2D), [v])
    return { value: value.dataSync()[0]!, grad: Float32Array.from(grads[v.name]!.dataSync() as Float32Array) }
  })
  v.dispose()
  return out
}

layer(Backend.layer())("distillation losses against float64 references", (it) => {
  it.effect("Hinton's loss: value and gradient (finite differences) for several T and α", () =>
    Effect.gen(function* () {
      const before = tf.memory().numTensors
      for (const [t, alpha, seed] of [[4, 0.9, 1], [1, 0.5, 2], [2.5, 0, 3], [3, 1, 4]] as const) {
        const z = uniform(seed, N * K, -3, 3)
        const teacher = uniform(seed + 10, N * K, -4, 4)
        const p = Array.from({ length: N }, (_, n) => softmax64(teacher, n, t))
        const y = labels(seed + 20, N, K)
        const { value, grad } = valueAndGrad(z, [N, K], (logits) =>
          KdLoss.hinton(logits, tf.tensor2d(p.flat(), [N, K]), tf.tensor1d(y, "int32"), { temperature: t, alpha }))
        expect(Math.abs(value - hinton64(z, p, y, t, alpha))).toBeLessThan(1e-5 * Math.max(1, Math.abs(value)))
        expect(worstError(grad, Kd64.numericGrad(z, (zz) => hinton64(zz, p, y, t, alpha)), 1e-6, 1e-4)).toBeLessThan(1)
      }
      assert.strictEqual(tf.memory().numTensors, before)
    })
  )

  it.effect("is 0 when the student matches the teacher (α = 1), finite for one-hot teachers", () =>
    Effect.gen(function* () {
      const z = uniform(5, N * K, -2, 2)
      const t = 3
      const p = Array.from({ length: N }, (_, n) => softmax64(z, n, t))
      const y = labels(6, N, K)
      const same = valueAndGrad(z, [N, K], (logits) => KdLoss.hinton(logits, tf.tensor2d(p.flat(), [N, K]), tf.tensor1d(y, "int32"), { temperature: t, alpha: 1 }))
      expect(Math.abs(same.value)).toBeLessThan(1e-6)
      expect(Math.max(...Array.from(same.grad, Math.abs))).toBeLessThan(1e-6)
      const onehot = Array.from({ length: N }, (_, n) => Array.from({ length: K }, (_, k) => (k === y[n] ? 1 : 0)))
      const hard = valueAndGrad(z, [N, K], (logits) => KdLoss.hinton(logits, tf.tensor2d(onehot.flat(), [N, K]), tf.tensor1d(y, "int32"), { temperature: t, alpha: 0.7 }))
      assert.isTrue(Number.isFinite(hard.value))
      expect(Math.abs(hard.value - hinton64(z, onehot, y, t, 0.7))).toBeLessThan(1e-5)
    })
  )

  it.effect("hint loss: value, gradient in h and in the projection (finite differences)", () =>
    Effect.gen(function* () {
      const ds = 4
      const dt = 3
      const h = uniform(7, N * ds)
      const w = uniform(8, ds * dt)
      const target = uniform(9, N * dt)
      const beta = 0.7
      const f = (hh: ArrayLike<number>, ww: ArrayLike<number>) => {
        let s = 0
        for (let n = 0; n < N; n++)
          for (let j = 0; j < dt; j++) {
            let v = 0
            for (let i = 0; i < ds; i++) v += hh[n * ds + i]! * ww[i * dt + j]!
            s += (v - target[n * dt + j]!) ** 2
          }
        return (beta * s) / (N * dt)
      }
      const { value, grad } = valueAndGrad(h, [N, ds], (x) => KdLoss.hint(x, tf.tensor2d(w, [ds, dt]), tf.tensor2d(target, [N, dt]), beta))
      expect(Math.abs(value - f(h, w))).toBeLessThan(1e-6)
      expect(worstError(grad, Kd64.numericGrad(h, (hh) => f(hh, w)), 1e-6, 1e-4)).toBeLessThan(1)
      const projection = tf.tidy(() => Float32Array.from(KdLoss.hintProjectionGrad(tf.tensor2d(h, [N, ds]), tf.tensor2d(w, [ds, dt]), tf.tensor2d(target, [N, dt]), beta).dataSync() as Float32Array))
      expect(worstError(projection, Kd64.numericGrad(w, (ww) => f(h, ww)), 1e-6, 1e-4)).toBeLessThan(1)
    })
  )

  it("tempered probabilities equal softmax(z/T) in float64", () => {
    const z = uniform(11, N * K, -30, 30)
    const got = KdLoss.temperedProbabilities(z, N, K, 4)
    expect(worstError(got, Array.from({ length: N }, (_, n) => softmax64(z, n, 4)).flat(), 1e-7, 1e-5)).toBeLessThan(1)
  })
})
