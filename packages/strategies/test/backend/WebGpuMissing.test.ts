// Its own process: the Vulkan loader reads VK_DRIVER_FILES once, when Dawn starts, so pointing it
// at a missing file here leaves Dawn without any driver (no adapter) for this whole file.
import { assert, describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs-core"
import { Effect, Logger } from "effect"
import { beforeEach } from "vitest"
import { Backend, BackendError } from "../../src/backend/Backend.ts"
import { skipWithoutGpu, webgpuPackagesMissing } from "../support/Gpu.ts"

process.env.VK_DRIVER_FILES = "/nonexistent.json"
delete process.env.VK_ICD_FILENAMES

// Needs only the packages: the point is that no driver is found.
const missing = webgpuPackagesMissing()
beforeEach((context) => skipWithoutGpu(context, missing))

describe("webgpu without an adapter", () => {
  it.effect("webgpu fails with NoAdapter, saying what is missing and how to get it", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Effect.provide(Backend, Backend.layer("webgpu")))
      assert.instanceOf(error, BackendError)
      assert.strictEqual(error.reason, "NoAdapter")
      expect(error.message).toContain("Vulkan")
      expect(error.message).toContain("scripts/setup-lavapipe.sh")
    })
  )

  it.effect("auto falls back to wasm with one log line saying why", () =>
    Effect.gen(function* () {
      const logged: Array<string> = []
      const capture = Logger.make(({ logLevel, message }) => logged.push(`${logLevel}: ${[message].flat().join(" ")}`))
      const backend = yield* Effect.provide(Backend, Backend.layer("auto")).pipe(Effect.provide(Logger.layer([capture])))
      assert.strictEqual(backend.name, "wasm")
      assert.strictEqual(backend.fallbackFrom, "webgpu")
      assert.isUndefined(backend.gpu)
      assert.strictEqual(tf.getBackend(), "wasm")
      assert.strictEqual(logged.length, 1, logged.join("\n"))
      expect(logged[0]).toMatch(/^Warn: webgpu unavailable \(NoAdapter: .*\); using wasm$/)
    })
  )
})
