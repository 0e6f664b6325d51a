// Its own file: it breaks the wasm backend of this test process on purpose.
import { assert, describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs-core"
import { ConfigProvider, Effect, Layer } from "effect"
import { Backend } from "../../src/backend/Backend.ts"

const noEnv = Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({})))

describe("Backend fallback", () => {
  it.effect("uses cpu when the default wasm backend cannot start, and fails when wasm was asked for by name", () =>
    Effect.gen(function* () {
      // Registered first, this factory wins over the real one (TF.js keeps the first registration).
      tf.registerBackend("wasm", () => {
        throw new Error("no wasm here")
      })
      const fallback = yield* Effect.provide(Backend, Backend.layer().pipe(noEnv))
      assert.strictEqual(fallback.name, "cpu")
      assert.strictEqual(fallback.fallbackFrom, "wasm")
      assert.strictEqual(tf.getBackend(), "cpu")
      const strict = yield* Effect.flip(Effect.provide(Backend, Backend.layer("wasm")))
      assert.strictEqual(strict.reason, "InitFailed")
      expect(strict.message).toContain('"wasm"')
    })
  )
})
