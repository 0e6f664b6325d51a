import { assert, describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs-core"
import { ConfigProvider, Effect, Layer } from "effect"
import { createRequire } from "node:module"
import { Backend, BackendError, requestedName } from "../../src/backend/Backend.ts"

const withEnv = (env: Record<string, string>) => Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(env)))

const importable = (specifier: string): boolean => {
  try {
    createRequire(import.meta.url).resolve(specifier)
    return true
  } catch {
    return false
  }
}

// One process holds one TF.js backend at a time: these tests run in order and switch it.
describe("Backend", () => {
  it.effect("defaults to wasm, which computes like the cpu backend", () =>
    Effect.gen(function* () {
      const backend = yield* Backend
      assert.strictEqual(backend.name, "wasm")
      assert.isUndefined(backend.fallbackFrom)
      assert.strictEqual(tf.getBackend(), "wasm")
      assert.strictEqual(backend.tfjsVersion, tf.version_core)
      const product = tf.tidy(() => Array.from(tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6, 7, 8], [2, 2])).dataSync()))
      assert.deepStrictEqual(product, [19, 22, 43, 50])
    }).pipe(Effect.provide(Backend.layer().pipe(withEnv({}))))
  )

  it.effect("picks CRUCIBLE_BACKEND when no name is given, and an explicit name over it", () =>
    Effect.gen(function* () {
      const fromEnv = yield* Effect.provide(Backend, Backend.layer().pipe(withEnv({ CRUCIBLE_BACKEND: "cpu" })))
      assert.strictEqual(fromEnv.name, "cpu")
      assert.strictEqual(tf.getBackend(), "cpu")
      const explicit = yield* Effect.provide(Backend, Backend.layer("wasm").pipe(withEnv({ CRUCIBLE_BACKEND: "cpu" })))
      assert.strictEqual(explicit.name, "wasm")
      assert.strictEqual(tf.getBackend(), "wasm")
      assert.strictEqual(yield* requestedName().pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ CRUCIBLE_BACKEND: "  " })))), undefined)
    })
  )

  it.effect("reports how many tensors are alive", () =>
    Effect.gen(function* () {
      const backend = yield* Backend
      const before = backend.liveTensors()
      const t = tf.zeros([3])
      assert.strictEqual(backend.liveTensors(), before + 1)
      t.dispose()
      assert.strictEqual(backend.liveTensors(), before)
    }).pipe(Effect.provide(Backend.layerCpu))
  )

  // webgpu and auto: WebGpu.test.ts and WebGpuMissing.test.ts (processes of their own)
  it.effect("rejects unknown names with a typed error that lists the known ones", () =>
    Effect.gen(function* () {
      const unknown = yield* Effect.flip(Effect.provide(Backend, Backend.layer("tpu")))
      assert.instanceOf(unknown, BackendError)
      assert.strictEqual(unknown.reason, "UnknownBackend")
      expect(unknown.message).toContain("wasm, cpu, tensorflow, webgpu, auto")
    })
  )

  const nodeInstalled = importable("@tensorflow/tfjs-node") || importable("@tensorflow/tfjs-node-gpu")
  it.effect(`tensorflow: ${nodeInstalled ? "starts libtensorflow" : "fails cleanly, saying how to install it (not installed here)"}`, () =>
    Effect.gen(function* () {
      const active = tf.getBackend()
      const result = yield* Effect.result(Effect.provide(Backend, Backend.layer("tensorflow")))
      if (nodeInstalled) {
        assert.strictEqual(result._tag, "Success")
        return
      }
      assert.strictEqual(result._tag, "Failure")
      if (result._tag === "Failure") {
        assert.strictEqual(result.failure.reason, "NotInstalled")
        expect(result.failure.message).toContain("@tensorflow/tfjs-node")
        expect(result.failure.message).toContain("pnpm")
      }
      // and the process keeps the backend it had
      assert.strictEqual(tf.getBackend(), active)
    })
  )
})
