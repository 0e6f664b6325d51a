import { assert, describe, it } from "@effect/vitest"
import { Model } from "@crucible/core"
import { Effect, Exit } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as TextSource from "../../src/text/TextSource.ts"
import * as TextTokenizer from "../../src/text/TextTokenizer.ts"

// Reference ids and decodes from Python `tokenizers` (fixtures/tokenizers/generate.py).
const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "fixtures", "tokenizers")
interface Reference {
  readonly vocab_size: number
  readonly eos: number | null
  readonly bos: number | null
  readonly ids: ReadonlyArray<ReadonlyArray<number>>
  readonly decoded: ReadonlyArray<string>
}
const cases = JSON.parse(fs.readFileSync(path.join(fixtures, "cases.json"), "utf8")) as { readonly texts: ReadonlyArray<string>; readonly tokenizers: Readonly<Record<string, Reference>> }

describe("TextTokenizer", () => {
  for (const name of ["gpt2", "llama2", "mistral", "llama3", "qwen2"]) {
    it.effect(`${name}: ids and decodes equal Python tokenizers' on ${cases.texts.length} texts`, () =>
      Effect.gen(function* () {
        const reference = cases.tokenizers[name]!
        const tokenizer = yield* TextTokenizer.read(path.join(fixtures, name))
        assert.strictEqual(tokenizer.source, path.join(fixtures, name, "tokenizer.json"))
        assert.strictEqual(tokenizer.vocabSize, reference.vocab_size)
        assert.strictEqual(tokenizer.eos, reference.eos ?? undefined)
        assert.strictEqual(tokenizer.bos, reference.bos ?? undefined)
        cases.texts.forEach((text, i) => {
          const ids = tokenizer.encode(text)
          assert.instanceOf(ids, Int32Array)
          assert.deepStrictEqual(Array.from(ids), reference.ids[i], `ids of ${JSON.stringify(text)}`)
          assert.strictEqual(tokenizer.decode(ids), reference.decoded[i], `decode of ${JSON.stringify(text)}`)
        })
      })
    )
  }

  it.effect("byte-level tokenizers give every text back", () =>
    Effect.gen(function* () {
      for (const name of ["gpt2", "qwen2"]) {
        const tokenizer = yield* TextTokenizer.read(path.join(fixtures, name, "tokenizer.json"))
        // qwen2 normalizes to NFC: its round trip is the NFC form.
        for (const text of cases.texts) assert.strictEqual(tokenizer.decode(tokenizer.encode(text)), name === "qwen2" ? text.normalize("NFC") : text)
      }
    })
  )

  it.effect("the lm-merge example's tokenizer: 2048 tokens, EOS 0, under 2 tokens per word of Brown's test documents, exact round trips", () =>
    Effect.gen(function* () {
      const tokenizer = yield* TextTokenizer.read(path.join(fixtures, "..", "..", "..", "..", "examples", "lm-merge", "tiny-llama"))
      assert.strictEqual(tokenizer.vocabSize, 2048)
      assert.strictEqual(tokenizer.eos, 0)
      const docs = yield* TextSource.documents("brown", "test", ["news", "learned"], (p) => p)
      let tokens = 0
      let words = 0
      for (const d of docs) {
        const ids = tokenizer.encode(d.text)
        assert.strictEqual(tokenizer.decode(ids), d.text)
        tokens += ids.length
        words += d.text.split(/\s+/).length
      }
      // train_tokenizer.py measured 1.90 over every test document; these two genres are close to it.
      assert.isBelow(tokens / words, 2)
    })
  )

  it.effect("tokenizerOf: the param, else the model's provenance (tokenizer, then donor), else an error saying to give tokenizer:", () =>
    Effect.gen(function* () {
      const model = (provenance?: Model.Provenance): Model.Model => ({ tensors: new Map(), metadata: {}, source: "stage m", files: [], provenance })
      const fromParam = yield* TextTokenizer.tokenizerOf(model(), "gpt2", (p) => path.join(fixtures, p))
      assert.strictEqual(fromParam.source, path.join(fixtures, "gpt2", "tokenizer.json"))
      const fromDonor = yield* TextTokenizer.tokenizerOf(model({ ...Model.fromFolder(path.join(fixtures, "llama2")) }), undefined, (p) => p)
      assert.strictEqual(fromDonor.bos, 1)
      const fromTokenizer = yield* TextTokenizer.tokenizerOf(model({ ...Model.fromFolder(path.join(fixtures, "llama2")), tokenizer: path.join(fixtures, "qwen2") }), undefined, (p) => p)
      assert.strictEqual(fromTokenizer.source, path.join(fixtures, "qwen2", "tokenizer.json"))
      const none = yield* Effect.flip(TextTokenizer.tokenizerOf(model(), undefined, (p) => p))
      assert.strictEqual(none._tag, "TextError")
      assert.include(none.message, "give `tokenizer:`")
    })
  )

  it.effect("errors name the missing or broken tokenizer.json", () =>
    Effect.gen(function* () {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-tok-"))
      try {
        const missing = yield* Effect.flip(TextTokenizer.read(dir))
        assert.strictEqual(missing.source, path.join(dir, "tokenizer.json"))
        assert.include(missing.message, "give `tokenizer:`")
        const nowhere = yield* Effect.flip(TextTokenizer.read(path.join(dir, "absent")))
        assert.include(nowhere.message, path.join(dir, "absent"))
        fs.writeFileSync(path.join(dir, "tokenizer.json"), "{ not json")
        const broken = yield* Effect.flip(TextTokenizer.read(dir))
        assert.include(broken.message, "cannot read it")
        fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify({ model: { type: "Nope" }, added_tokens: [] }))
        const unknown = yield* Effect.exit(TextTokenizer.read(dir))
        assert.isTrue(Exit.isFailure(unknown))
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    })
  )
})
