import { assert, describe, it } from "@effect/vitest"
import { RunCache } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as TextSource from "../../src/text/TextSource.ts"

const withDir = <A, E>(use: (dir: string) => Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "crucible-text-"))),
    use,
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

const write = (file: string, text: string) => {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, text)
}

const paragraphs = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix} paragraph ${i}\nstill ${i}`).join("\n\n  \n")

describe("TextSource", () => {
  it("splits each group by document: k % 5 == 4 test, k % 5 == 3 val, and a small group's last document is test", () => {
    assert.deepStrictEqual(Array.from({ length: 11 }, (_, k) => TextSource.splitOf(k, 11)), ["train", "train", "train", "val", "test", "train", "train", "train", "val", "test", "train"])
    assert.deepStrictEqual(Array.from({ length: 4 }, (_, k) => TextSource.splitOf(k, 4)), ["train", "train", "train", "test"])
    assert.deepStrictEqual([TextSource.splitOf(0, 1)], ["test"])
  })

  it("decodes its params", () => {
    const decode = Schema.decodeUnknownSync(TextSource.TextParam)
    assert.strictEqual(decode("brown"), "brown")
    assert.deepStrictEqual(decode({ jsonl: "a.jsonl", field: "body" }), { jsonl: "a.jsonl", field: "body" })
    assert.throws(() => decode("wiki"))
    assert.deepStrictEqual(Schema.decodeUnknownSync(TextSource.GroupsParam)({ press: ["news"] }), { press: ["news"] })
  })

  it.effect("reads a folder recursively in sorted order: paragraphs are documents, the group is the sub-folder or the file's stem", () =>
    withDir((dir) =>
      Effect.gen(function* () {
        write(path.join(dir, "news", "b.txt"), paragraphs("news-b", 3))
        write(path.join(dir, "news", "deep", "a.md"), paragraphs("news-deep-a", 2))
        write(path.join(dir, "news", "c.json"), "ignored")
        write(path.join(dir, "poems.txt"), "roses\r\n\r\nviolets\n")
        const all = yield* TextSource.documents({ text: "corpus" }, "all", undefined, (p) => path.join(dir, p.replace("corpus", "")))
        assert.deepStrictEqual(all.map((d) => [d.id, d.group]), [
          ["news/b.txt#0", "news"], ["news/b.txt#1", "news"], ["news/b.txt#2", "news"],
          ["news/deep/a.md#0", "news"], ["news/deep/a.md#1", "news"],
          ["poems.txt#0", "poems"], ["poems.txt#1", "poems"]
        ])
        assert.strictEqual(all[0]!.text, "news-b paragraph 0\nstill 0")
        const test = yield* TextSource.documents({ text: dir }, "test", undefined, (p) => p)
        assert.deepStrictEqual(test.map((d) => d.id), ["news/deep/a.md#1", "poems.txt#1"])
        const val = yield* TextSource.documents({ text: dir }, "val", undefined, (p) => p)
        assert.deepStrictEqual(val.map((d) => d.id), ["news/deep/a.md#0"])
        const one = yield* TextSource.documents({ text: path.join(dir, "poems.txt") }, "train", undefined, (p) => p)
        assert.deepStrictEqual(one.map((d) => [d.group, d.text]), [["poems", "roses"]])
        assert.deepStrictEqual(TextSource.reads({ text: "corpus" }), [{ file: "corpus" }])
      })
    )
  )

  it.effect("reads JSONL line by line, with the text and group fields; a bad line is named", () =>
    withDir((dir) =>
      Effect.gen(function* () {
        const file = path.join(dir, "reviews.jsonl")
        write(file, [...Array.from({ length: 6 }, (_, i) => JSON.stringify({ body: `text ${i}`, genre: i % 2 === 0 ? "even" : "odd" })), "", JSON.stringify({ body: "last" })].join("\n"))
        const byGenre = yield* Effect.flip(TextSource.documents({ jsonl: file, field: "body", group_field: "genre" }, "all", undefined, (p) => p))
        assert.strictEqual(byGenre.line, 8)
        assert.include(byGenre.message, `${file}:8`)
        assert.include(byGenre.message, '"genre"')
        write(file, Array.from({ length: 6 }, (_, i) => JSON.stringify({ body: `text ${i}`, genre: i % 2 === 0 ? "even" : "odd" })).join("\n") + "\n")
        const docs = yield* TextSource.documents({ jsonl: file, field: "body", group_field: "genre" }, "all", undefined, (p) => p)
        assert.deepStrictEqual(docs.map((d) => [d.id, d.group, d.text]), Array.from({ length: 6 }, (_, i) => [`reviews.jsonl:${i + 1}`, i % 2 === 0 ? "even" : "odd", `text ${i}`]))
        const noField = yield* Effect.flip(TextSource.documents({ jsonl: file }, "all", undefined, (p) => p))
        assert.strictEqual(noField.line, 1)
        assert.include(noField.message, 'no string field "text" (fields: body, genre)')
        write(file, '{"text": "fine"}\n{"text": 1}\n')
        const wrongType = yield* Effect.flip(TextSource.documents({ jsonl: file }, "all", undefined, (p) => p))
        assert.strictEqual(wrongType.line, 2)
        write(file, '{"text": "fine"}\n[1, 2\n')
        const notJson = yield* Effect.flip(TextSource.documents({ jsonl: file }, "all", undefined, (p) => p))
        assert.strictEqual(notJson.line, 2)
        assert.include(notJson.message, "not JSON")
        const missing = yield* Effect.flip(TextSource.documents({ jsonl: path.join(dir, "none.jsonl") }, "all", undefined, (p) => p))
        assert.include(missing.message, "none.jsonl")
      })
    )
  )

  it.effect("filters and renames groups; an unknown group lists the known ones", () =>
    Effect.gen(function* () {
      const test = yield* TextSource.documents("brown", "test", undefined, (p) => p)
      const kept = yield* TextSource.documents("brown", "test", ["learned", "news"], (p) => p)
      assert.deepStrictEqual(kept, [...test.filter((d) => d.group === "learned"), ...test.filter((d) => d.group === "news")])
      const named = yield* TextSource.documents("brown", "test", { press: ["news", "editorial", "reviews"], fiction: ["fiction"] }, (p) => p)
      assert.deepStrictEqual(named.map((d) => d.id), [...test.filter((d) => ["news", "editorial", "reviews"].includes(d.group)), ...test.filter((d) => d.group === "fiction")].map((d) => d.id))
      assert.deepStrictEqual([...new Set(named.map((d) => d.group))], ["press", "fiction"])
      const unknown = yield* Effect.flip(TextSource.documents("brown", "test", { press: ["news", "sports"] }, (p) => p))
      assert.strictEqual(unknown._tag, "TextError")
      assert.include(unknown.message, 'unknown group "sports"')
      assert.include(unknown.message, "news, editorial, reviews, religion, hobbies, lore, belles_lettres, government, learned, fiction, mystery, science_fiction, adventure, romance, humor")
    }).pipe(Effect.provideService(RunCache.RunCache, RunCache.make()))
  )
})
