/**
 * The transformers on the webgpu backend (Dawn on lavapipe here and in CI) against the same
 * PyTorch reference and bounds as on wasm: logits within 1e-4, gradients within 1e-3 of each
 * tensor's largest |g|. Every read is asynchronous (webgpu cannot read synchronously). Skipped
 * with the reason where there is no Vulkan driver, a failure in CI.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import { beforeEach } from "vitest"
import { Backend } from "../../src/backend/Backend.ts"
import { gpuMissing, skipWithoutGpu } from "../support/Gpu.ts"
import { CASES, GRAD_RTOL, LOGITS_ATOL, loadCase, maxAbs, maxAbsDiff, runCase } from "./TransformerFixtures.ts"

const missing = gpuMissing()
beforeEach((context) => skipWithoutGpu(context, missing))

describe("transformers against PyTorch (webgpu)", () => {
  for (const name of CASES) {
    it.effect(`${name}: logits, loss and every weight's gradient`, () =>
      Effect.gen(function* () {
        yield* Effect.provide(Backend, Backend.layer("webgpu"))
        assert.strictEqual(tf.getBackend(), "webgpu")
        const c = yield* loadCase(name)
        const got = yield* Effect.promise(() => runCase(c))
        expect(maxAbsDiff(got.logits, c.logits), "logits").toBeLessThan(LOGITS_ATOL)
        expect(Math.abs(got.loss - c.loss)).toBeLessThan(1e-5)
        for (const [tensor, want] of c.grads) expect(maxAbsDiff(got.grads.get(tensor)!.data, want) / maxAbs(want), tensor).toBeLessThan(GRAD_RTOL)
      }),
      60_000
    )
  }
})
