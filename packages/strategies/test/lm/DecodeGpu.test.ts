/**
 * The key/value cache on the webgpu backend (Dawn on lavapipe here and in CI): prefill + steps give
 * the full pass's last logits at every position, and generation the recompute's ids across the
 * window (DecodeChecks.ts), for gpt2 (learned positions) and mistral (RoPE, one kv head, a sliding
 * window). Skipped with the reason where there is no Vulkan driver, a failure in CI.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import { beforeEach } from "vitest"
import { Backend } from "../../src/backend/Backend.ts"
import { gpuMissing, skipWithoutGpu } from "../support/Gpu.ts"
import { decodeErrors, generateBoth } from "./DecodeChecks.ts"
import { LOGITS_ATOL, loadCase } from "./TransformerFixtures.ts"

const missing = gpuMissing()
beforeEach((context) => skipWithoutGpu(context, missing))

// As on wasm (Decode.test.ts): other matMul shapes round in another order, a few ulps; 1e-5.
const RECOMPUTE_ATOL = 1e-5

describe("kv cache (webgpu)", () => {
  for (const name of ["gpt2", "mistral"] as const) {
    it.effect(`${name}: prefill + steps give the full pass's last logits; greedy ids equal the recompute's`, () =>
      Effect.gen(function* () {
        yield* Effect.provide(Backend, Backend.layer("webgpu"))
        assert.strictEqual(tf.getBackend(), "webgpu")
        const c = yield* loadCase(name)
        const e = yield* Effect.promise(() => decodeErrors(c, 2))
        expect(e.recompute, "against Transformer.logits").toBeLessThan(RECOMPUTE_ATOL)
        expect(e.pytorch, "against PyTorch").toBeLessThan(LOGITS_ATOL)
        const window = name === "gpt2" ? c.config.maxPositions : 8
        const greedy = yield* generateBoth(c, window, 5, { maxNewTokens: 8, temperature: 0, seed: 0 })
        assert.deepStrictEqual(greedy.cached, greedy.recomputed)
      }),
      120_000
    )
  }
})
