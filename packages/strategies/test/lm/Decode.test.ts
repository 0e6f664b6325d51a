/**
 * The key/value cache (`lm/Decode.ts`) and generation over it (`lm/Generate.ts`) on wasm and cpu,
 * for every fixture family: gpt2 (learned positions), llama (GQA, llama3 scaling), llama tied with
 * biases, qwen2, qwen3 (q/k norm), mistral (one kv head, a sliding window of 4 shorter than the
 * sequence). See DecodeChecks.ts for what is compared.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import { Backend } from "../../src/backend/Backend.ts"
import { decodeErrors, generateBoth } from "./DecodeChecks.ts"
import { CASES, LOGITS_ATOL, loadCase } from "./TransformerFixtures.ts"

// The cached pass does the full pass's arithmetic on fewer rows: the same ops, but the matMuls and
// softmaxes have other shapes (one query row, keys concatenated), so float32 sums may round in
// another order — a few ulps of |z| ≲ 5 per op over depth 2. Seen: ≤ 9.6e-7 on wasm (its GEMM
// blocks by shape), 0 on cpu. 1e-5 leaves room and is far below what a wrong position, mask or
// rotation moves (RoPE tables from 0 instead of the cache's length: 2.8–4.2).
const RECOMPUTE_ATOL = 1e-5

for (const backend of ["wasm", "cpu"] as const) {
  describe(`kv cache (${backend})`, () => {
    for (const name of CASES) {
      it.effect(`${name}: prefill + steps give the full pass's last logits at every position`, () =>
        Effect.gen(function* () {
          yield* Effect.provide(Backend, Backend.layer(backend))
          assert.strictEqual(tf.getBackend(), backend)
          const c = yield* loadCase(name)
          // a prefill of 1 (every later position a step) and of 3 (a multi-token prefill, then steps)
          for (const prefix of [1, 3]) {
            const e = yield* Effect.promise(() => decodeErrors(c, prefix))
            assert.strictEqual(e.positions, c.T - prefix + 1)
            expect(e.recompute, `${name} prefix ${prefix}: against Transformer.logits`).toBeLessThan(RECOMPUTE_ATOL)
            expect(e.pytorch, `${name} prefix ${prefix}: against PyTorch`).toBeLessThan(LOGITS_ATOL)
          }
        })
      )
    }
  })
}

describe("generate over the cache (wasm)", () => {
  for (const name of CASES) {
    it.effect(`${name}: greedy and sampled ids equal the recompute's across the window (re-prefill)`, () =>
      Effect.gen(function* () {
        yield* Effect.provide(Backend, Backend.layer("wasm"))
        const c = yield* loadCase(name)
        // gpt2's own 9 positions; the llama family's 64 cut to 8 (mistral's window of 4 inside it).
        // A prompt of 5 and 14 new tokens: steps until the window fills, then a re-prefill per token.
        const window = c.config.family === "gpt2" ? c.config.maxPositions : 8
        assert.isAbove(5 + 14, window + 2)
        const greedy = yield* generateBoth(c, window, 5, { maxNewTokens: 14, temperature: 0, seed: 0 })
        assert.strictEqual(greedy.cached.length, 14)
        assert.deepStrictEqual(greedy.cached, greedy.recomputed)
        const sampled = yield* generateBoth(c, window, 5, { maxNewTokens: 14, temperature: 0.9, topK: 20, seed: 7 })
        assert.deepStrictEqual(sampled.cached, sampled.recomputed)
        assert.notDeepEqual(sampled.cached, greedy.cached)
        // a prompt longer than the window: the first prefill already slides
        const long = yield* generateBoth(c, 4, 7, { maxNewTokens: 5, temperature: 0, seed: 0 })
        assert.deepStrictEqual(long.cached, long.recomputed)
      })
    )
  }

  it.effect("stops after the end-of-sequence token (kept), releasing the cache", () =>
    Effect.gen(function* () {
      yield* Effect.provide(Backend, Backend.layer("wasm"))
      const c = yield* loadCase("llama")
      const free = yield* generateBoth(c, 8, 5, { maxNewTokens: 14, temperature: 0, seed: 0 })
      const eos = free.cached[3]!
      const stopped = yield* generateBoth(c, 8, 5, { maxNewTokens: 14, temperature: 0, seed: 0, eos })
      assert.deepStrictEqual(stopped.cached, free.cached.slice(0, free.cached.indexOf(eos) + 1))
      assert.deepStrictEqual(stopped.cached, stopped.recomputed)
    })
  )
})
