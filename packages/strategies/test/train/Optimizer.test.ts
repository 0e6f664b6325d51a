import { assert, describe, expect, layer } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import { Backend } from "../../src/backend/Backend.ts"
import type { ParamSpec } from "../../src/models/Network.ts"
import * as Optimizer from "../../src/train/Optimizer.ts"
import { uniform, worstError } from "../models/fixtures.ts"
import { optimizerCases, pytorchUpdates } from "../support/OptimizerReference.ts"

const spec: ParamSpec = { name: "w", shape: [3, 2], role: "weight", layout: "linear", trainable: true, module: "linear", fanIn: 2 }

layer(Backend.layer())("optimizers against a float64 reference of PyTorch's update rules", (it) => {
  for (const opt of optimizerCases) {
    it.effect(`${JSON.stringify(opt)}: 5 steps with changing rates, then the exported state resumes exactly`, () =>
      Effect.gen(function* () {
        const theta0 = uniform(1, 6)
        const grads = Array.from({ length: 5 }, (_, t) => uniform(10 + t, 6, -2, 2))
        const lrs = [1, 0.5, 2, 1, 0.25].map((f) => f * opt.lr)
        const want = pytorchUpdates(opt, theta0, grads, lrs).theta
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
