// tokenizer/align on tiny LLaMA folders with different vocabularies: the target vocabulary as
// mergekit builds it, every row against a float64 reference of mergekit's embed.py rules, and the
// tokenizer folder the output's provenance points at.
import { type Model, TensorRef } from "@crucible/core"
import { Effect } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Builtin } from "../../src/Builtin.ts"
import * as ChatTemplates from "../../src/hf/ChatTemplates.ts"
import { TokenizerAlign } from "../../src/hf/TokenizerAlign.ts"
import { decodeParams } from "../decodeParams.ts"
import { A, B, C, HIDDEN, idsOf, loadFolder, rowValue, type TinyTokenizer, writeFolder } from "./tokenizerFolders.ts"

let root = ""
const SEEDS = { a: 1, b: 2, c: 3 }
const UNION = ["<unk>", "<s>", "</s>", "a", "b", "c", "d", "e", "x", "y", "w", "z", "<|im_start|>", "<|im_end|>"]

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), "tok-align-"))
  await writeFolder(path.join(root, "a"), SEEDS.a, A)
  await writeFolder(path.join(root, "b"), SEEDS.b, B)
  await writeFolder(path.join(root, "c"), SEEDS.c, C)
})
afterAll(() => fs.rm(root, { recursive: true, force: true }))

interface Source { readonly tok: TinyTokenizer; readonly seed: number }

/**
 * Float64 reference of mergekit's PermutedEmbeddings: the model's own row when it has the token
 * (id < vocab_size), else: the only model that has it, zeros when none, the base's row, the mean.
 */
const reference = (models: ReadonlyArray<Source>, base: number | undefined, target: ReadonlyArray<string>, pick: number, lmHead: boolean, rows = target.length) => {
  const row = (m: number, id: number) => Array.from({ length: HIDDEN }, (_, j) => rowValue(models[m]!.seed, id, j, lmHead))
  const out = target.map((token) => {
    const ids = models.map(({ tok }) => {
      const id = idsOf(tok).get(token)
      return id !== undefined && id < tok.vocabSize ? id : undefined
    })
    if (ids[pick] !== undefined) return row(pick, ids[pick])
    const present = ids.flatMap((id, m) => (id === undefined ? [] : [m]))
    if (present.length === 1) return row(present[0]!, ids[present[0]!]!)
    if (present.length === 0) return Array.from({ length: HIDDEN }, () => 0)
    if (base !== undefined && ids[base] !== undefined) return row(base, ids[base])
    return Array.from({ length: HIDDEN }, (_, j) => present.reduce((s, m) => s + row(m, ids[m]!)[j]!, 0) / present.length)
  })
  const mean = Array.from({ length: HIDDEN }, (_, j) => out.reduce((s, r) => s + r[j]!, 0) / out.length)
  while (out.length < rows) out.push(mean)
  return out
}

const readRows = (model: Model.Model, name: string) =>
  Effect.map(TensorRef.readFloat32(model.tensors.get(name)!), (v) => Array.from({ length: v.length / HIDDEN }, (_, r) => Array.from(v.subarray(r * HIDDEN, (r + 1) * HIDDEN))))

const align = (params: Record<string, unknown>, options: { readonly base?: boolean; readonly id?: string; readonly dryRun?: boolean } = {}) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const [a, b, c] = yield* Effect.forEach(["a", "b", "c"], (d) => loadFolder(path.join(root, d)))
    const id = options.id ?? "tok"
    const out = yield* TokenizerAlign.run({
      id, kind: TokenizerAlign.kind, params: decodeParams(TokenizerAlign, params as never),
      inputs: options.base === false ? { models: [a!, b!, c!], base: undefined } : { base: a!, models: [b!, c!] },
      resolvePath: (p) => path.resolve(root, p), runDir: path.join(root, "run"), cacheDir: path.join(root, "cache"), dryRun: options.dryRun ?? false
    })
    const embedding = out.tensors.get("model.embed_tokens.weight")!
    return {
      out,
      embed: yield* readRows(out, "model.embed_tokens.weight"),
      head: yield* readRows(out, "lm_head.weight"),
      norm: Array.from(yield* TensorRef.readFloat32(out.tensors.get("model.norm.weight")!)),
      // a writer's chunk: a range that starts and ends inside rows
      part: Array.from(yield* TensorRef.readFloat32(embedding, { start: 7, end: Math.min(44, TensorRef.numel(embedding.shape)) })),
      dir: path.join(root, "run", `${id}-tokenizer`)
    }
  })))

const expectRows = (actual: ReadonlyArray<ReadonlyArray<number>>, expected: ReadonlyArray<ReadonlyArray<number>>) => {
  expect(actual.length).toBe(expected.length)
  actual.forEach((r, k) => r.forEach((v, j) => expect(v, `row ${k}, column ${j}`).toBeCloseTo(expected[k]![j]!, 5)))
}

const readJson = async (file: string) => JSON.parse(await fs.readFile(file, "utf8")) as Record<string, unknown>

const ABC: ReadonlyArray<Source> = [{ tok: A, seed: SEEDS.a }, { tok: B, seed: SEEDS.b }, { tok: C, seed: SEEDS.c }]

describe("tokenizer/align", () => {
  it("is a built-in kind", () => expect(Builtin["tokenizer/align"]).toBe(TokenizerAlign))

  it("union: base vocabulary, then the others' tokens, then their added tokens; each model's rows by mergekit's rules", async () => {
    for (const [pick, m] of [["base", 0], [0, 1], [1, 2]] as const) {
      const { embed, head, norm } = await align({ source: "union", pick }, { id: `u${m}` })
      expectRows(embed, reference(ABC, 0, UNION, m, false))
      expectRows(head, reference(ABC, 0, UNION, m, true))
      expect(norm, "other tensors pass through").toEqual([1, 1, 1].map(() => [SEEDS.a, SEEDS.b, SEEDS.c][m]))
    }
    // the four kinds of default, spelled out for the base (A): w is B's and C's → their mean
    const { embed } = await align({ source: "union", pick: "base" }, { id: "u-base" })
    expect(embed[UNION.indexOf("w")]![0]).toBeCloseTo((rowValue(2, 8, 0, false) + rowValue(3, 6, 0, false)) / 2, 6)
    expect(embed[UNION.indexOf("x")]![0]).toBeCloseTo(rowValue(2, 5, 0, false), 6) // B's only
    expect(embed[UNION.indexOf("<|im_end|>")]![0]).toBeCloseTo(rowValue(2, 10, 0, false), 6)
  })

  it("union writes the tokenizer folder (provenance.tokenizer; the donor stays): added tokens with their flags, the chat template", async () => {
    const { dir, out } = await align({ source: "union", pick: 0, chat_template: "chatml" }, { id: "folder" })
    expect(out.provenance).toEqual({ folders: [path.join(root, "b")], donor: path.join(root, "b"), tokenizer: dir, methods: ["tokenizer/align"] })
    const tokenizer = await readJson(path.join(dir, "tokenizer.json"))
    expect(Object.keys((tokenizer["model"] as { vocab: object }).vocab)).toEqual(A.tokens)
    const added = tokenizer["added_tokens"] as Array<{ id: number; content: string; special: boolean; normalized: boolean }>
    expect(added.map((t) => [t.id, t.content, t.special, t.normalized])).toEqual([
      [8, "x", false, true], [9, "y", false, true], [10, "w", false, true], [11, "z", false, true],
      [12, "<|im_start|>", true, false], [13, "<|im_end|>", true, false]
    ])
    const config = await readJson(path.join(dir, "tokenizer_config.json"))
    expect(config["chat_template"]).toBe(ChatTemplates.named["chatml"])
    expect(Object.keys(config["added_tokens_decoder"] as object)).toEqual(["8", "9", "10", "11", "12", "13"])
    expect(config["bos_token"]).toBe("<s>")
    expect(await fs.readFile(path.join(dir, "special_tokens_map.json"), "utf8")).toBe(await fs.readFile(path.join(root, "a", "special_tokens_map.json"), "utf8"))
    expect((await fs.readdir(dir)).sort()).toEqual(["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"])
  })

  it("base: the base's vocabulary, its tokenizer files byte for byte; tokens the model lacks from the base", async () => {
    const { embed, head, dir } = await align({ source: "base", pick: 0 }, { id: "base" })
    expectRows(embed, reference(ABC, 0, A.tokens, 1, false))
    expectRows(head, reference(ABC, 0, A.tokens, 1, true))
    for (const f of ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]) {
      expect(await fs.readFile(path.join(dir, f), "utf8"), f).toBe(await fs.readFile(path.join(root, "a", f), "utf8"))
    }
  })

  it("model:<i>: that model's tokenizer, unstripped; tokens no model has a row for are zeros", async () => {
    const target = [...C.tokens, "<UNUSED_0>", "<UNUSED_1>"]
    const { embed, dir } = await align({ source: "model:1", pick: 0 }, { id: "modelC" })
    expectRows(embed, reference(ABC, 0, target, 1, false))
    expect(embed[7]).toEqual([0, 0, 0])
    expect(embed.length).toBe(9)
    expect(await fs.readFile(path.join(dir, "tokenizer.json"), "utf8")).toBe(await fs.readFile(path.join(root, "c", "tokenizer.json"), "utf8"))
    // a folder names the same tokenizer
    const byFolder = await align({ source: "model:c", pick: 0 }, { id: "modelC-folder" })
    expect(byFolder.embed).toEqual(embed)
    expect(TokenizerAlign.reads!(decodeParams(TokenizerAlign, { source: "model:c", pick: 0 }))).toEqual([{ file: "c" }])
    expect(TokenizerAlign.reads!(decodeParams(TokenizerAlign, { source: "model:base", pick: 0 }))).toEqual([])
    const byBase = await align({ source: "model:base", pick: 1 }, { id: "model-base" })
    expectRows(byBase.embed, reference(ABC, 0, A.tokens, 2, false))
  })

  it("without a base: the first model's tokenizer is the base, tokens in several models get their mean", async () => {
    const { embed } = await align({ source: "union", pick: 0 }, { base: false, id: "nobase" })
    expectRows(embed, reference(ABC, undefined, UNION, 0, false))
    // `c` is A's and B's: no base, so A's row is its own; for C (pick 2) it is the mean
    const forC = await align({ source: "union", pick: 2 }, { base: false, id: "nobase-c" })
    expect(forC.embed[UNION.indexOf("c")]![0]).toBeCloseTo((rowValue(1, 5, 0, false) + rowValue(2, 4, 0, false)) / 2, 6)
  })

  it("pad_to_multiple_of: rows rounded up, the new rows the mean row; reads of a chunk give the same bytes", async () => {
    const { embed, part } = await align({ source: "union", pick: 0, pad_to_multiple_of: 8 }, { id: "pad" })
    expectRows(embed, reference(ABC, 0, UNION, 1, false, 16))
    expect(part).toEqual(embed.flat().slice(7, 44))
  })

  it("tokens (mergekit's tokenizer.tokens): added to the vocabulary, rows from a model's token or id, zeros, force", async () => {
    const tokens = {
      "<new>": { source: { model: 0, token: "x" } },
      a: { source: "zero", force: true },
      d: { source: { model: "base", token_id: 2 } }
    }
    const { embed, head, dir } = await align({ source: "base", pick: 0, tokens }, { id: "tokens" })
    const target = [...A.tokens, "<new>"]
    const expected = reference(ABC, 0, target, 1, false)
    expected[3] = [0, 0, 0] // a: forced to zeros though B has it
    expected[6] = [0, 1, 2].map((j) => rowValue(SEEDS.a, 2, j, false)) // d: B lacks it → A's row 2
    expected[8] = [0, 1, 2].map((j) => rowValue(SEEDS.b, 5, j, false)) // <new>: B's row for x
    expectRows(embed, expected)
    expect(head[8]![0]).toBeCloseTo(rowValue(SEEDS.b, 5, 0, true), 6)
    const tokenizer = await readJson(path.join(dir, "tokenizer.json"))
    expect((tokenizer["added_tokens"] as Array<{ id: number; content: string }>).map((t) => [t.id, t.content])).toEqual([[8, "<new>"]])
    await expect(align({ source: "base", pick: 0, tokens: { d: { source: { model: 1 } } } }, { id: "tokens-bad" }))
      .rejects.toThrow(/tokens\["d"\]: .*c\/model.safetensors has no row for "d"/)
  })

  it("chat_template auto takes the inputs' most common template; an unknown name fails naming the choices", async () => {
    const { dir } = await align({ source: "base", pick: 0, chat_template: "auto" }, { id: "auto" })
    expect((await readJson(path.join(dir, "tokenizer_config.json")))["chat_template"]).toBe(B.chatTemplate)
    await expect(align({ source: "base", pick: 0, chat_template: "chatlm" }, { id: "bad" })).rejects.toThrow(/chatlm.*chatml/)
  })

  it("fails clearly: pick past the models, a bad source; plan writes nothing", async () => {
    await expect(align({ source: "union", pick: 5 }, { id: "x" })).rejects.toThrow(/stage "x": pick: 5 is past the 2 models/)
    const dry = await align({ source: "union", pick: 0 }, { id: "dry", dryRun: true })
    await expect(fs.access(dry.dir)).rejects.toThrow()
    expect(dry.out.provenance?.tokenizer, "a plan's save lists the files of the folder the target comes from").toBe(path.join(root, "a"))
    expect(() => decodeParams(TokenizerAlign, { source: "unoin", pick: 0 } as never)).toThrow()
  })
})
