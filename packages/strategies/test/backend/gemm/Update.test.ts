import { assert, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs-core"
import { ConfigProvider, Effect, Layer } from "effect"
import { Backend } from "../../../src/backend/Backend.ts"
import * as Update from "../../../src/backend/gemm/Update.ts"
import type { ParamSpec } from "../../../src/models/Network.ts"
import * as Optimizer from "../../../src/train/Optimizer.ts"
import { uniform } from "../../models/fixtures.ts"
import { optimizerCases, pytorchUpdates } from "../../support/OptimizerReference.ts"

const withEnv = (env: Record<string, string>) => Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(env)))

// 1027 values: 256 SIMD blocks and a tail of 3 (the scalar path).
const SHAPE = [13, 79]
const SIZE = 13 * 79
const spec: ParamSpec = { name: "w", shape: SHAPE, role: "weight", layout: "linear", trainable: true, module: "linear", fanIn: 13 }
const STEPS = 4
const grads = Array.from({ length: STEPS }, (_, t) => uniform(40 + t, SIZE, -2, 2))
const lrs = [1, 0.5, 2, 0.25]

interface Run {
  readonly fused: boolean
  readonly theta: Float32Array
  readonly slots: ReadonlyMap<string, Float32Array>
  readonly tensorsLeft: number
}

/** `STEPS` updates of one parameter through `Optimizer.create` on the wasm backend, `threads` "0" (XNNPACK, the op chain) or "2" (the GEMM attached: the fused kernels). */
const run = (opt: Optimizer.Optimizer, threads: string) =>
  Effect.scoped(
    Effect.provide(
      Effect.sync((): Run => {
        const kernel = opt.type === "sgd" ? Update.SGD_UPDATE : Update.ADAM_UPDATE
        const theta0 = uniform(1, SIZE)
        const before = tf.memory().numTensors
        const initial = tf.tensor(theta0, SHAPE)
        const variable = tf.variable(initial)
        initial.dispose()
        const o = Optimizer.create(opt, [{ spec, variable }])
        grads.forEach((g, t) => {
          const grad = tf.tensor(g, SHAPE)
          o.apply(new Map([["w", grad]]), lrs[t]! * opt.lr)
          // The update writes new tensors: the gradient it read is as it was.
          assert.deepStrictEqual(grad.dataSync(), g)
          grad.dispose()
        })
        const state = o.state()
        const theta = variable.dataSync() as Float32Array
        o.dispose()
        variable.dispose()
        return {
          fused: Update.available(kernel),
          theta,
          slots: new Map([...state.slots].map(([name, t]) => [name, Float32Array.from(t.data)])),
          tensorsLeft: tf.memory().numTensors - before
        }
      }),
      Backend.layer("wasm").pipe(withEnv({ CRUCIBLE_GEMM_THREADS: threads }))
    )
  )

/**
 * Float64 reference (PyTorch 1.13's rules) of the same run, and per element a bound for the
 * float32 result: each step's float32 operations round with relative error ≤ u = 2⁻²⁴ each; the
 * update term `lr·m̂/(√v̂ + ε)` (SGD: `lr·g`) carries ~10 of them, θ's subtraction one more. The
 * bound sums, over the steps, 16·u·(|θ| + |update term|) — the errors of earlier steps carried
 * forward unamplified (Adam's step is ≤ lr in size, SGD's linear in θ): a deliberately loose but
 * still tight-to-float32 bound, 10–100× the rounding actually seen.
 */
const reference = (opt: Optimizer.Optimizer) => {
  const { theta, magnitude } = pytorchUpdates(opt, uniform(1, SIZE), grads, lrs.map((f) => f * opt.lr))
  return { theta, bound: magnitude.map((x) => 16 * 2 ** -24 * x) }
}

describe("fused optimizer updates (CrucibleAdamUpdate, CrucibleSgdUpdate)", () => {
  for (const opt of optimizerCases) {
    it.effect(`${JSON.stringify(opt)}: the fused kernel gives the op chain's bits, within float32 rounding of float64`, () =>
      Effect.gen(function* () {
        const chain = yield* run(opt, "0")
        const fused = yield* run(opt, "2")
        assert.isFalse(chain.fused, "without the GEMM the op chain runs")
        assert.isTrue(fused.fused, "with the GEMM attached the fused kernel is registered")
        assert.deepStrictEqual([fused.tensorsLeft, chain.tensorsLeft], [0, 0])
        // The same correctly rounded float32 operations in the same order (no FMA): equal bits.
        assert.deepStrictEqual(fused.theta, chain.theta)
        assert.deepStrictEqual([...fused.slots.keys()], [...chain.slots.keys()])
        for (const [name, values] of fused.slots) assert.deepStrictEqual(values, chain.slots.get(name), name)
        const want = reference(opt)
        for (let i = 0; i < SIZE; i++) {
          const error = Math.abs(fused.theta[i]! - want.theta[i]!)
          if (error > want.bound[i]!) assert.fail(`element ${i}: ${fused.theta[i]} vs float64 ${want.theta[i]} (error ${error} > bound ${want.bound[i]})`)
        }
        assert.notDeepEqual(fused.theta, uniform(1, SIZE))
      })
    )
  }
})
