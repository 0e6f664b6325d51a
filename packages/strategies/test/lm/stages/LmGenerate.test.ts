// lm/generate: greedy continuations equal the argmax chain computed directly from the model's
// logits (over a window of the model's positions, which the prompts outgrow); sampling is seeded
// (same seed, same text), top_k 1 is greedy, and another seed draws another text.
import { assert, layer } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import * as path from "node:path"
import { Backend } from "../../../src/backend/Backend.ts"
import * as LmConfig from "../../../src/lm/LmConfig.ts"
import * as LmWeights from "../../../src/lm/LmWeights.ts"
import * as Transformer from "../../../src/lm/Transformer.ts"
import { LmGenerateKind } from "../../../src/lm/stages/LmGenerateStage.ts"
import * as TextTokenizer from "../../../src/text/TextTokenizer.ts"
import { decodeParams } from "../../decodeParams.ts"
import { context, tempDir, writeModelFolder } from "./support.ts"

const dir = tempDir("lm-generate")
// 12 positions: a prompt of a few tokens plus 16 new ones outgrows the window.
const folder = writeModelFolder(path.join(dir, "tiny"), { max_position_embeddings: 12 })
const prompts = ["The jury said", "It was a bright cold day in April, and the clocks"]

type Sample = { readonly prompt: string; readonly continuation: string; readonly ids: ReadonlyArray<number> }

layer(Backend.layer())("lm/generate", (it) => {
  it.effect("greedy = the argmax chain over the last 12 positions; sampling is seeded; top_k 1 is greedy", () =>
    Effect.gen(function* () {
      const config = yield* LmConfig.read(folder)
      const tokenizer = yield* TextTokenizer.read(folder)
      // A trained-looking model is not needed: any weights define an argmax chain.
      const weights = LmWeights.init(config, 11)
      const model = { ...LmWeights.toModel(config, weights, "init"), provenance: { folders: [], donor: folder, methods: [] } }
      const run = (params: Record<string, unknown>) =>
        Effect.map(
          LmGenerateKind.run({ ...context(dir, "gen", "lm/generate"), params: decodeParams(LmGenerateKind, { prompts, max_new_tokens: 16, ...params }), inputs: { model } }),
          (m) => (m.values as { samples: ReadonlyArray<Sample> }).samples
        )
      const greedy = yield* run({ temperature: 0 })

      const device = Transformer.upload(config, weights, { trainable: false })
      for (const [i, prompt] of prompts.entries()) {
        const ids = Array.from(tokenizer.encode(prompt))
        const out: Array<number> = []
        for (let step = 0; step < 16; step++) {
          const window = ids.slice(-12)
          const z = tf.tidy(() => Transformer.logits(device, tf.tensor2d([window], [1, window.length], "int32")))
          const all = yield* Effect.promise(() => z.data() as Promise<Float32Array>)
          z.dispose()
          const last = all.subarray((window.length - 1) * config.vocabSize, window.length * config.vocabSize)
          let best = 0
          for (let k = 1; k < last.length; k++) if (last[k]! > last[best]!) best = k
          ids.push(best)
          out.push(best)
          if (best === tokenizer.eos) break
        }
        assert.deepStrictEqual(greedy[i]!.ids, out, `prompt ${i}`)
        assert.strictEqual(greedy[i]!.continuation, tokenizer.decode(out))
        assert.strictEqual(greedy[i]!.prompt, prompt)
      }
      device.dispose()
      assert.isAbove(tokenizer.encode(prompts[1]!).length + greedy[1]!.ids.length, 12)

      const sampled = yield* run({ temperature: 1, seed: 4 })
      assert.deepStrictEqual(yield* run({ temperature: 1, seed: 4 }), sampled)
      assert.notDeepEqual(yield* run({ temperature: 1, seed: 5 }), sampled)
      assert.notDeepEqual(sampled, greedy)
      assert.deepStrictEqual(yield* run({ temperature: 1.5, top_k: 1, seed: 9 }), greedy)
    }).pipe(Effect.scoped))
})
