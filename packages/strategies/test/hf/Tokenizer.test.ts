// Tokenizer files as mergekit's build.py reads and builds them: stripping past vocab_size, the union's
// ids and flags, errors naming the file; the chat templates mergekit ships.
import { Effect, Result } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as ChatTemplates from "../../src/hf/ChatTemplates.ts"
import * as EmbeddingRows from "../../src/hf/EmbeddingRows.ts"
import * as Tokenizer from "../../src/hf/Tokenizer.ts"

let root = ""
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), "tokenizer-"))
})
afterAll(() => fs.rm(root, { recursive: true, force: true }))

const write = async (name: string, files: Record<string, unknown>) => {
  const dir = path.join(root, name)
  await fs.mkdir(dir, { recursive: true })
  for (const [f, v] of Object.entries(files)) await fs.writeFile(path.join(dir, f), typeof v === "string" ? v : JSON.stringify(v))
  return dir
}

const bpe = (tokens: ReadonlyArray<string>, added: ReadonlyArray<Record<string, unknown>> = [], merges: ReadonlyArray<string> = []) =>
  ({ version: "1.0", added_tokens: added, model: { type: "BPE", vocab: Object.fromEntries(tokens.map((t, i) => [t, i])), merges } })

const read = (dir: string) => Effect.runPromise(Tokenizer.read(dir))

describe("Tokenizer", () => {
  it("reads the vocabulary with added tokens; Unigram ids are positions", async () => {
    const dir = await write("read", { "tokenizer.json": bpe(["a", "b"], [{ id: 2, content: "<x>", special: true }]), "config.json": { vocab_size: 3 } })
    const t = await read(dir)
    expect([...Tokenizer.vocab(t)]).toEqual([["a", 0], ["b", 1], ["<x>", 2]])
    expect(t.added[0]).toEqual({ id: 2, content: "<x>", special: true, single_word: false, lstrip: false, rstrip: false, normalized: false })
    expect(t.vocabSize).toBe(3)
    const uni = await read(await write("unigram", { "tokenizer.json": { model: { type: "Unigram", vocab: [["<unk>", 0], ["▁a", -1.5]] } } }))
    expect([...Tokenizer.vocab(uni)]).toEqual([["<unk>", 0], ["▁a", 1]])
  })

  it("a folder without tokenizer.json fails naming the file", async () => {
    const dir = await write("none", { "tokenizer.model": "sp" })
    await expect(read(dir)).rejects.toThrow(`${path.join(dir, "tokenizer.json")}: not found: only fast tokenizers`)
  })

  it("strip: tokens at ids ≥ vocab_size leave the vocabulary, the added tokens and the merges; other models are refused", async () => {
    const dir = await write("strip", {
      "tokenizer.json": bpe(["a", "b", "ab", "c"], [{ id: 4, content: "<pad>", special: true }], ["a b", "ab c"]),
      "config.json": { vocab_size: 3 }
    })
    const s = await Effect.runPromise(Tokenizer.strip(await read(dir)))
    expect([...Tokenizer.vocab(s)]).toEqual([["a", 0], ["b", 1], ["ab", 2]])
    expect((s.json["model"] as { merges: Array<string> }).merges).toEqual(["a b"])
    const same = await read(await write("nostrip", { "tokenizer.json": bpe(["a"]), "config.json": { vocab_size: 1 } }))
    expect(await Effect.runPromise(Tokenizer.strip(same))).toBe(same)
    const wordLevel = await write("wl", { "tokenizer.json": { model: { type: "WordLevel", vocab: { a: 0, b: 1 } } }, "config.json": { vocab_size: 1 } })
    await expect(Effect.runPromise(Effect.flatMap(Tokenizer.read(wordLevel), Tokenizer.strip))).rejects.toThrow(/WordLevel model: only BPE/)
  })

  it("union: next ids after the base, plain tokens normalized, added tokens keep the first tokenizer's flags, rows past vocab_size ignored", async () => {
    const base = await read(await write("u-base", { "tokenizer.json": bpe(["a", "b"], [{ id: 2, content: "<s>", special: true }]), "config.json": { vocab_size: 3 } }))
    const one = await read(await write("u-one", {
      "tokenizer.json": bpe(["b", "q", "r"], [{ id: 3, content: "<t>", special: true, lstrip: true }, { id: 4, content: "<late>", special: true }]),
      "config.json": { vocab_size: 4 }
    }))
    const two = await read(await write("u-two", { "tokenizer.json": bpe(["r", "a", "s"], [{ id: 3, content: "<t>", special: false }]) }))
    const u = Tokenizer.union(base, [one, two])
    expect([...Tokenizer.vocab(u)]).toEqual([["a", 0], ["b", 1], ["<s>", 2], ["q", 3], ["r", 4], ["s", 5], ["<t>", 6]])
    expect(u.added.map((t) => [t.content, t.special, t.normalized, t.lstrip])).toEqual([
      ["<s>", true, false, false], ["q", false, true, false], ["r", false, true, false], ["s", false, true, false], ["<t>", true, false, true]
    ])
    // two has no config.json: mergekit then counts its vocabulary without added tokens, so its <t> (id 3) has no row
    const config = JSON.parse(Tokenizer.tokenizerConfigJson(u, "{{ x }}")) as Record<string, unknown>
    expect(Object.keys(config["added_tokens_decoder"] as object)).toEqual(["2", "3", "4", "5", "6"])
    expect(config["chat_template"]).toBe("{{ x }}")
    expect((JSON.parse(Tokenizer.tokenizerJson(u)) as { added_tokens: Array<{ id: number }> }).added_tokens.map((t) => t.id)).toEqual([2, 3, 4, 5, 6])
  })
})

describe("ChatTemplates", () => {
  it("ships mergekit's templates by name; Jinja text passes; a short or brace-less value is refused", () => {
    expect(Object.keys(ChatTemplates.named).sort()).toEqual(["alpaca", "chatml", "exaone", "llama3", "mistral"])
    expect(ChatTemplates.named["chatml"]).toBe(
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}\n{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}\n"
    )
    expect(Result.getOrThrow(ChatTemplates.resolve("llama3"))).toContain("<|start_header_id|>")
    expect(Result.getOrThrow(ChatTemplates.resolve("{% for m in messages %}{{ m }}{% endfor %}"))).toContain("for m in")
    expect(Result.isFailure(ChatTemplates.resolve("chat-ml"))).toBe(true)
    expect(Result.isFailure(ChatTemplates.resolve("a long value with no braces at all"))).toBe(true)
  })

  it("auto: the most common template, the first of equals", () => {
    expect(ChatTemplates.plurality(["x{ }", " y{ } ", "y{ }", undefined])).toBe("y{ }")
    expect(ChatTemplates.plurality(["b{", "a{"])).toBe("b{")
    expect(ChatTemplates.plurality([undefined])).toBeUndefined()
  })
})

describe("EmbeddingRows", () => {
  it("reads scattered rows in runs of nearby rows, found by bisection", () => {
    const runs = EmbeddingRows.runs([900, 3, 5, 3, 40, 20, 1000], 16)
    expect(runs).toEqual([{ lo: 3, hi: 21 }, { lo: 40, hi: 41 }, { lo: 900, hi: 901 }, { lo: 1000, hi: 1001 }])
    for (const r of [3, 4, 5, 20, 40, 900, 1000]) {
      const run = EmbeddingRows.runOf(runs, r)
      expect(r >= run.lo && r < run.hi, String(r)).toBe(true)
    }
    expect(EmbeddingRows.padded(14, 8)).toBe(16)
    expect(EmbeddingRows.padded(16, 8)).toBe(16)
  })
})
