import { assert, describe, expect, layer } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import { Backend } from "../../src/backend/Backend.ts"
import type { ParamSpec } from "../../src/models/Network.ts"
import * as Optimizer from "../../src/train/Optimizer.ts"
import { uniform, worstError } from "../models/fixtures.ts"

const spec: ParamSpec = { name: "w", shape: [3, 2], role: "weight", layout: "linear", trainable: true, module: "linear", fanIn: 2 }

/** Float64 reference of the update rules, written from the PyTorch 1.13 source. */
const reference = (opt: Optimizer.Optimizer, theta0: Float64Array, grads: ReadonlyArray<Float64Array>, lrs: ReadonlyArray<number>) => {
  const theta = Float64Array.from(theta0)
  const buf = new Float64Array(theta.length)
  const m = new Float64Array(theta.length)
  const v = new Float64Array(theta.length)
  grads.forEach((grad, t) => {
    const lr = lrs[t]!
    const wd = opt.weightDecay ?? 0
    for (let i = 0; i < theta.length; i++) {
      if (opt.type === "sgd") {
        let g = grad[i]! + wd * theta[i]!
        const mu = opt.momentum ?? 0
        if (mu > 0) {
          buf[i] = t === 0 ? g : mu * buf[i]! + g
          g = opt.nesterov === true ? g + mu * buf[i]! : buf[i]!
        }
        theta[i] = theta[i]! - lr * g
      } else {
        const [b1, b2] = opt.betas ?? [0.9, 0.999]
        const eps = opt.eps ?? 1e-8
        if (opt.type === "adamw") theta[i] = theta[i]! * (1 - lr * wd)
        const g = opt.type === "adam" ? grad[i]! + wd * theta[i]! : grad[i]!
        m[i] = b1 * m[i]! + (1 - b1) * g
        v[i] = b2 * v[i]! + (1 - b2) * g * g
        const step = t + 1
        theta[i] = theta[i]! - (lr / (1 - b1 ** step)) * (m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(1 - b2 ** step) + eps))
      }
    }
  })
  return theta
}

layer(Backend.layer())("optimizers against a float64 reference of PyTorch's update rules", (it) => {
  const cases: ReadonlyArray<Optimizer.Optimizer> = [
    { type: "sgd", lr: 0.1 },
    { type: "sgd", lr: 0.1, momentum: 0.9, weightDecay: 0.01 },
    { type: "sgd", lr: 0.05, momentum: 0.8, nesterov: true },
    { type: "adam", lr: 0.01 },
    { type: "adam", lr: 0.01, betas: [0.5, 0.9], eps: 1e-6, weightDecay: 0.1 },
    { type: "adamw", lr: 0.01, weightDecay: 0.1 }
  ]
  for (const opt of cases) {
    it.effect(`${JSON.stringify(opt)}: 5 steps with changing rates, then the exported state resumes exactly`, () =>
      Effect.gen(function* () {
        const theta0 = uniform(1, 6)
        const grads = Array.from({ length: 5 }, (_, t) => uniform(10 + t, 6, -2, 2))
        const lrs = [1, 0.5, 2, 1, 0.25].map((f) => f * opt.lr)
        const want = reference(opt, Float64Array.from(theta0), grads.map((g) => Float64Array.from(g)), lrs)
        // θ in TF.js layout [in, out] = transpose of the PyTorch [3, 2] tensor; gradients likewise
        const toTf = (d: Float32Array) => tf.tidy(() => tf.transpose(tf.tensor2d(d, [3, 2])))
        const variable = tf.tidy(() => tf.variable(toTf(theta0)))
        const run = (from: number, to: number, state?: Optimizer.OptimizerState) => {
          const o = Optimizer.create(opt, [{ spec, variable }], state)
          for (let t = from; t < to; t++) {
            const g = toTf(grads[t]!)
            o.apply(new Map([["w", g]]), lrs[t]!)
            g.dispose()
          }
          const s = o.state()
          o.dispose()
          return s
        }
        const mid = run(0, 3)
        assert.strictEqual(mid.step, 3)
        assert.deepStrictEqual([...mid.slots.keys()], Optimizer.slotNames(opt).map((n) => `w.${n}`))
        run(3, 5, mid)
        const got = tf.tidy(() => tf.transpose(variable).dataSync() as Float32Array)
        variable.dispose()
        expect(worstError(got, want, 1e-6, 1e-5)).toBeLessThan(1)
        expect(worstError(got, theta0, 1e-4, 0)).toBeGreaterThan(1)
      })
    )
  }
})
