import { assert, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs-core"
import { ConfigProvider, Effect, Layer } from "effect"
import { Backend } from "../../../src/backend/Backend.ts"
import * as WasmKernels from "../../../src/backend/gemm/WasmKernels.ts"
import * as Layers from "../../../src/models/Layers.ts"

/** Seeded uniform values in [-1, 1) (a 32-bit LCG: the same numbers on every run). */
const uniform = (seed: number, length: number): Float32Array => {
  let s = seed >>> 0
  return Float32Array.from({ length }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 31 - 1
  })
}

const withEnv = (env: Record<string, string>) => Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(env)))

/**
 * Dense's gradients dx, dW for an upstream gradient `dy`, and the same products written with
 * explicit transposes (the path without the GEMM).
 */
const gradients = (batch: number, inSize: number, outSize: number) =>
  tf.tidy(() => {
    const x = tf.tensor2d(uniform(1, batch * inSize), [batch, inSize])
    const w = tf.tensor2d(uniform(2, inSize * outSize), [inSize, outSize])
    const b = tf.tensor1d(uniform(3, outSize))
    const dy = tf.tensor2d(uniform(4, batch * outSize), [batch, outSize])
    const grads = tf.grads((x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => Layers.dense(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D))([x, w, b], dy)
    const explicit = [tf.matMul(dy, tf.transpose(w)), tf.matMul(tf.transpose(x), dy)]
    return { got: grads.slice(0, 2).map((g) => g.dataSync() as Float32Array), explicit: explicit.map((g) => g.dataSync() as Float32Array) }
  })

describe("dense's backward with the GEMM attached", () => {
  it.effect("asks the GEMM for dy·Wᵀ and xᵀ·dy as transposed products: the explicit transposes' bits", () =>
    Effect.scoped(
      Effect.provide(
        Effect.sync(() => {
          // 128×512·512×256: 33 MFLOP, over the threshold both ways; 8×16·16×4: under it.
          assert.isTrue(WasmKernels.takesTransposed(128, 512, 256))
          assert.isFalse(WasmKernels.takesTransposed(8, 16, 4))
          const { got, explicit } = gradients(128, 512, 256)
          assert.deepStrictEqual(got[0], explicit[0])
          assert.deepStrictEqual(got[1], explicit[1])
        }),
        Backend.layer("wasm").pipe(withEnv({ CRUCIBLE_GEMM_THREADS: "2" }))
      )
    )
  )

  it.effect("without the GEMM no product is asked for transposed", () =>
    Effect.scoped(
      Effect.provide(
        Effect.sync(() => assert.isFalse(WasmKernels.takesTransposed(128, 512, 256))),
        Backend.layer("wasm").pipe(withEnv({ CRUCIBLE_GEMM_THREADS: "0" }))
      )
    )
  )
})
