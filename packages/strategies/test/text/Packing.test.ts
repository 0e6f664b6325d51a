import { assert, describe, it } from "@effect/vitest"
import { RunCache } from "@crucible/core"
import { Effect } from "effect"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Packing from "../../src/text/Packing.ts"
import * as TextSource from "../../src/text/TextSource.ts"
import * as TextTokenizer from "../../src/text/TextTokenizer.ts"

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "fixtures", "tokenizers")
const groups = { press: ["news", "editorial", "reviews"], fiction: ["fiction", "mystery", "science_fiction", "adventure", "romance"], religion: ["religion"] }

describe("Packing", () => {
  it.effect("packs real Brown test documents per group: sizes, no mixed groups, every block a piece of its group's text", () =>
    Effect.gen(function* () {
      const tokenizer = yield* TextTokenizer.read(path.join(fixtures, "gpt2"))
      const eos = tokenizer.decode([tokenizer.eos!])
      assert.strictEqual(eos, "<|endoftext|>")
      const docs = yield* TextSource.documents("brown", "test", groups, (p) => p)
      const seqLen = 64
      const row = seqLen + 1
      const blocks = Packing.pack(docs, tokenizer, seqLen, { name: "brown/test" })
      assert.deepStrictEqual(blocks.groups, ["press", "fiction", "religion"])
      // Each group: its documents' ids with EOS after each, cut into rows; the tail is dropped.
      const streams = blocks.groups.map((g) => docs.filter((d) => d.group === g).flatMap((d) => [...tokenizer.encode(d.text), tokenizer.eos!]))
      assert.strictEqual(blocks.count, streams.reduce((n, s) => n + Math.floor(s.length / row), 0))
      assert.strictEqual(blocks.tokens.length, blocks.count * row)
      assert.deepStrictEqual(Array.from(blocks.groupOf), streams.flatMap((s, g) => Array.from({ length: Math.floor(s.length / row) }, () => g)))
      let i = 0
      streams.forEach((s, g) => {
        const text = docs.filter((d) => d.group === blocks.groups[g]).map((d) => d.text + eos).join("")
        for (let k = 0; k < Math.floor(s.length / row); k++, i++) {
          const block = blocks.tokens.subarray(i * row, (i + 1) * row)
          assert.deepStrictEqual(Array.from(block), s.slice(k * row, (k + 1) * row))
          assert.include(text, tokenizer.decode(block), `block ${i} of ${blocks.groups[g]}`)
        }
      })
      const again = Packing.pack(docs, tokenizer, seqLen, { name: "brown/test" })
      assert.deepStrictEqual(again, blocks)
    })
  )

  it.effect("maxBlocksPerGroup keeps blocks spread evenly over each group", () =>
    Effect.gen(function* () {
      const tokenizer = yield* TextTokenizer.read(path.join(fixtures, "gpt2"))
      const docs = yield* TextSource.documents("brown", "test", groups, (p) => p)
      const full = Packing.pack(docs, tokenizer, 32)
      const capped = Packing.pack(docs, tokenizer, 32, { maxBlocksPerGroup: 10 })
      const row = 33
      assert.strictEqual(capped.count, 30)
      let at = 0
      full.groups.forEach((_, g) => {
        const indices = Array.from(full.groupOf).flatMap((x, i) => (x === g ? [i] : []))
        assert.isAbove(indices.length, 10)
        for (let i = 0; i < 10; i++, at++) {
          const from = indices[Math.floor((i * indices.length) / 10)]!
          assert.strictEqual(capped.groupOf[at], g)
          assert.deepStrictEqual(capped.tokens.subarray(at * row, (at + 1) * row), full.tokens.subarray(from * row, (from + 1) * row))
        }
      })
    })
  )

  it.effect("adds BOS only where the tokenizer's config says so, and no EOS twice", () =>
    Effect.gen(function* () {
      const llama2 = yield* TextTokenizer.read(path.join(fixtures, "llama2"))
      const docs = [{ id: "a", group: "g", text: "one two three" }, { id: "b", group: "g", text: "four" }]
      const a = llama2.encode("one two three")
      const b = llama2.encode("four")
      assert.strictEqual(a[0], llama2.bos)
      const blocks = Packing.pack(docs, llama2, a.length + b.length + 1)
      assert.deepStrictEqual(Array.from(blocks.tokens), [...a, llama2.eos!, ...b, llama2.eos!])
      const gpt2 = yield* TextTokenizer.read(path.join(fixtures, "gpt2"))
      const end = Array.from(gpt2.encode("end<|endoftext|>"))
      assert.deepStrictEqual(end.slice(1), [gpt2.eos])
      const ended = Packing.pack([{ id: "a", group: "g", text: "end<|endoftext|>" }, { id: "b", group: "g", text: "x" }], gpt2, 3)
      assert.deepStrictEqual(Array.from(ended.tokens), [end[0], gpt2.eos, ...gpt2.encode("x"), gpt2.eos])
    })
  )

  it.effect("load is memoised for the run and names the blocks", () =>
    Effect.gen(function* () {
      const tokenizer = yield* TextTokenizer.read(path.join(fixtures, "gpt2"))
      const first = yield* Packing.load("brown", "val", ["humor", "science_fiction"], tokenizer, 128, (p) => p)
      const second = yield* Packing.load("brown", "val", ["humor", "science_fiction"], tokenizer, 128, (p) => p)
      assert.strictEqual(first, second)
      assert.strictEqual(first.name, "brown/val[humor,science_fiction]")
      assert.deepStrictEqual(first.groups, ["humor", "science_fiction"])
      const capped = yield* Packing.load("brown", "val", ["humor", "science_fiction"], tokenizer, 128, (p) => p, { maxBlocksPerGroup: 2 })
      assert.strictEqual(capped.count, 4)
      const unknown = yield* Effect.flip(Packing.load("brown", "val", ["comedy"], tokenizer, 128, (p) => p))
      assert.include(unknown.message, 'unknown group "comedy"')
    }).pipe(Effect.provideService(RunCache.RunCache, RunCache.make()))
  )
})
