import { assert, describe, it } from "@effect/vitest"
import { RunCache } from "@crucible/core"
import { Effect, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Packing from "../../src/text/Packing.ts"
import * as TextSource from "../../src/text/TextSource.ts"
import * as TextTokenizer from "../../src/text/TextTokenizer.ts"
import type { TextTokenizer as Tokenizer } from "../../src/text/TextTokenizer.ts"

// The streamed path (TextSource.stream → splitter → Packing.packStream, what Packing.load runs) must
// give exactly the blocks of the in-memory path (documents → pack), which the other text tests pin.

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "fixtures", "tokenizers")

const withDir = <A, E>(use: (dir: string) => Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "crucible-stream-"))),
    use,
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

// A small seeded generator (mulberry32), so the generated files are the same on every run.
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const withRunCache = <A, E>(effect: Effect.Effect<A, E, RunCache.RunCache>) => Effect.provideService(effect, RunCache.RunCache, RunCache.make())

describe("streamed text", () => {
  it("the splitter decides every document as splitOf(k, n) would, holding at most a group's first four", () => {
    const next = random(7)
    const sizes = [1, 2, 3, 4, 5, 6, 9, 12]
    const pushes = sizes.flatMap((n, g) => Array.from({ length: n }, () => `g${g}`))
    for (let i = pushes.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1))
      ;[pushes[i], pushes[j]] = [pushes[j]!, pushes[i]!]
    }
    const decided = new Map<string, Array<readonly [number, string]>>()
    const splitter = TextSource.splitter<readonly [string, number]>(([group, k], split, index) => {
      assert.strictEqual(index, k)
      decided.set(group, [...(decided.get(group) ?? []), [k, split]])
    })
    const seen = new Map<string, number>()
    for (const group of pushes) {
      const k = seen.get(group) ?? 0
      seen.set(group, k + 1)
      splitter.push(group, [group, k])
      // From a group's fifth document on, everything pushed to it is decided; before, nothing is.
      if (k >= 4) assert.strictEqual(decided.get(group)?.length, k + 1, `${group} after ${k + 1}`)
      else assert.isUndefined(decided.get(group), `${group} waits`)
    }
    splitter.end()
    sizes.forEach((n, g) => assert.deepStrictEqual(decided.get(`g${g}`), Array.from({ length: n }, (_, k) => [k, TextSource.splitOf(k, n)]), `g${g} of ${n}`))
    assert.deepStrictEqual(splitter.groups(), [...new Set(pushes)])
  })

  it.effect("text files read line by line give the paragraphs of the whole text split at blank lines", () =>
    withDir((dir) =>
      Effect.gen(function* () {
        // Pieces chosen to hit the edges: \r\n, lone \r, runs of blank lines, blank lines of spaces and
        // tabs, a no-break space and a BOM (trimmed, but not blank), leading and trailing blank lines.
        const pieces = ["word", "two words", " ", "\t", "\n", "\n", "\n\n", "\r", "\r\n", "\r\n\r\n", "\u00a0", "\ufeff", " \t\n"]
        const next = random(11)
        const reference: Array<[string, string]> = []
        for (let f = 0; f < 20; f++) {
          const text = Array.from({ length: 1 + Math.floor(next() * 60) }, () => pieces[Math.floor(next() * pieces.length)]!).join("")
          const name = `f${String(f).padStart(2, "0")}.txt`
          fs.writeFileSync(path.join(dir, name), text)
          text
            .replace(/\r\n?/g, "\n")
            .split(/\n[ \t]*\n/)
            .map((p) => p.trim())
            .filter((p) => p.length > 0)
            .forEach((p, i) => reference.push([`${name}#${i}`, p]))
        }
        const docs = yield* Stream.runCollect(TextSource.stream({ text: dir }, (p) => p))
        assert.deepStrictEqual(docs.map((d) => [d.id, d.text]), reference)
        assert.isAbove(reference.length, 40)
      })
    )
  )

  it.effect("load (streamed) gives pack(documents(…))'s blocks for JSONL with groups of every size, every split, named groups and caps", () =>
    withDir((dir) =>
      Effect.gen(function* () {
        const tokenizer = yield* TextTokenizer.read(path.join(fixtures, "gpt2"))
        const next = random(3)
        const words = "the jury said it did find that many of the voters were not told about a new law".split(" ")
        const lines: Array<string> = []
        const pool = [1, 2, 3, 4, 5, 6, 7, 11].flatMap((n, g) => Array.from({ length: n }, () => `g${g}`))
        for (let i = pool.length - 1; i > 0; i--) {
          const j = Math.floor(next() * (i + 1))
          ;[pool[i], pool[j]] = [pool[j]!, pool[i]!]
        }
        for (const group of pool) {
          lines.push(JSON.stringify({ text: Array.from({ length: 3 + Math.floor(next() * 30) }, () => words[Math.floor(next() * words.length)]).join(" "), g: group }))
          if (next() < 0.2) lines.push("")
        }
        const file = path.join(dir, "mixed.jsonl")
        fs.writeFileSync(file, lines.join("\n") + "\n")
        const param = { jsonl: file, group_field: "g" }
        const cases: ReadonlyArray<readonly [TextSource.TextSplit, TextSource.GroupsParam | undefined, number, number | undefined]> = [
          ["train", undefined, 8, undefined],
          ["val", undefined, 4, undefined],
          ["test", undefined, 8, undefined],
          ["all", undefined, 8, 3],
          // Two small groups in one name: their documents are decided at the end, out of source order.
          ["test", { x: ["g2", "g0"], y: ["g6"] }, 4, undefined],
          ["train", { x: ["g7", "g3", "g1"], y: ["g1"] }, 4, 2],
          ["val", ["g6", "g4", "g6"], 4, undefined]
        ]
        for (const [split, groups, seqLen, max] of cases) {
          const docs = yield* TextSource.documents(param, split, groups, (p) => p)
          const expected = Packing.pack(docs, tokenizer, seqLen, { maxBlocksPerGroup: max, name: Packing.nameOf(param, split, groups) })
          const streamed = yield* Packing.load(param, split, groups, tokenizer, seqLen, (p) => p, { maxBlocksPerGroup: max })
          assert.isAbove(expected.count, 0, JSON.stringify([split, groups]))
          assert.deepStrictEqual(streamed, expected, JSON.stringify([split, groups, seqLen, max]))
        }
      }).pipe(withRunCache)
    )
  )

  it.effect("load (streamed) gives pack(documents(…))'s blocks for Brown", () =>
    Effect.gen(function* () {
      const tokenizer = yield* TextTokenizer.read(path.join(fixtures, "gpt2"))
      for (const [split, groups] of [["val", undefined], ["test", { press: ["news", "editorial", "reviews"], humor: ["humor"] }]] as const) {
        const docs = yield* TextSource.documents("brown", split, groups, (p) => p)
        const expected = Packing.pack(docs, tokenizer, 64, { name: Packing.nameOf("brown", split, groups) })
        assert.deepStrictEqual(yield* Packing.load("brown", split, groups, tokenizer, 64, (p) => p), expected)
      }
    }).pipe(withRunCache)
  )

  it.effect("a bad JSONL line fails the streamed load naming the file and line", () =>
    withDir((dir) =>
      Effect.gen(function* () {
        const tokenizer = yield* TextTokenizer.read(path.join(fixtures, "gpt2"))
        const file = path.join(dir, "bad.jsonl")
        fs.writeFileSync(file, '{"text": "fine"}\n\n{"body": "no text"}\n')
        const error = yield* Effect.flip(Packing.load({ jsonl: file }, "all", undefined, tokenizer, 4, (p) => p))
        assert.strictEqual(error._tag, "TextError")
        assert.strictEqual(error.line, 3)
        assert.include(error.message, `${file}:3`)
      }).pipe(withRunCache)
    )
  )

  it("ids past 65,535 are kept (4 bytes an id when the vocabulary does not fit 2)", () => {
    // A tokenizer of code points shifted past 2^16: storage width, not tokenization, is under test.
    const wide: Tokenizer = {
      source: "code points + 70000",
      vocabSize: 70000 + 0x110000,
      eos: 70000,
      bos: undefined,
      encode: (text) => Int32Array.from([...text].map((c) => 70000 + c.codePointAt(0)!)),
      decode: (ids) => String.fromCodePoint(...Array.from(ids, (id) => id - 70000))
    }
    const blocks = Packing.pack([{ id: "a", group: "g", text: "héllo wörld" }], wide, 5)
    assert.deepStrictEqual(Array.from(blocks.tokens), [..."héllo wörld", "\0"].map((c) => 70000 + c.codePointAt(0)!))
  })
})
