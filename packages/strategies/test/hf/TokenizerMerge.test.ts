// mergekit's `tokenizer_source: union` end to end: load three HF folders, align each to the union,
// merge/linear, save to a folder. The folder's tokenizer is the union, its config's vocab_size the
// union's size, and its embedding the mean of the aligned rows (float64 reference).
import { Model, Safetensors, TensorRef } from "@crucible/core"
import { Effect } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, expect, it } from "vitest"
import { TokenizerAlign } from "../../src/hf/TokenizerAlign.ts"
import { Load } from "../../src/io/Load.ts"
import { Save } from "../../src/io/Save.ts"
import { Linear } from "../../src/merge/Linear.ts"
import { decodeParams } from "../decodeParams.ts"
import { A, B, C, HIDDEN, idsOf, rowValue, writeFolder } from "./tokenizerFolders.ts"

let root = ""
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), "tok-merge-"))
  await writeFolder(path.join(root, "a"), 1, A)
  await writeFolder(path.join(root, "b"), 2, B)
  await writeFolder(path.join(root, "c"), 3, C)
})
afterAll(() => fs.rm(root, { recursive: true, force: true }))

const context = (id: string) => ({ id, resolvePath: (p: string) => path.resolve(root, p), runDir: path.join(root, "run"), cacheDir: path.join(root, "cache"), dryRun: false, pipeline: "tok" })

it("union tokenizer → merge/linear → save to a folder: the union tokenizer, its size, the mean of the aligned rows", async () => {
  await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const [a, b, c] = yield* Effect.forEach(["a", "b", "c"], (p, i) => Load.run({ ...context(`load-${i}`), kind: "load", params: decodeParams(Load, { path: p }), inputs: {} }))
    const aligned = yield* Effect.forEach(["base", 0, 1] as const, (pick) =>
      TokenizerAlign.run({ ...context(`tok-${pick}`), kind: TokenizerAlign.kind, params: decodeParams(TokenizerAlign, { source: "union", pick }), inputs: { base: a!, models: [b!, c!] } }))
    const merged = yield* Linear.run({ ...context("merge"), kind: "merge/linear", params: decodeParams(Linear, {}), inputs: { models: aligned } } as never)
    expect((merged as Model.Model).provenance?.tokenizer).toBe(path.join(root, "run", "tok-base-tokenizer"))
    yield* Save.run({ ...context("save"), kind: "save", params: decodeParams(Save, { path: "out/" }), inputs: { model: merged as Model.Model } })
  })))
  const out = path.join(root, "out")
  expect(await fs.readFile(path.join(out, "tokenizer.json"), "utf8")).toBe(await fs.readFile(path.join(root, "run", "tok-base-tokenizer", "tokenizer.json"), "utf8"))
  const tokenizer = JSON.parse(await fs.readFile(path.join(out, "tokenizer.json"), "utf8")) as { added_tokens: Array<{ content: string }> }
  expect(tokenizer.added_tokens.map((t) => t.content)).toEqual(["x", "y", "w", "z", "<|im_start|>", "<|im_end|>"])
  const config = JSON.parse(await fs.readFile(path.join(out, "config.json"), "utf8")) as Record<string, unknown>
  expect(config["vocab_size"]).toBe(14)
  expect(config["hidden_size"]).toBe(HIDDEN)

  // reference: each model's aligned row (own, only holder, base, mean), averaged over the three
  const models = [{ tok: A, seed: 1 }, { tok: B, seed: 2 }, { tok: C, seed: 3 }]
  const union = [...A.tokens, "x", "y", "w", "z", "<|im_start|>", "<|im_end|>"]
  const alignedRow = (m: number, token: string, j: number) => {
    const ids = models.map(({ tok }) => { const id = idsOf(tok).get(token); return id !== undefined && id < tok.vocabSize ? id : undefined })
    const row = (i: number) => rowValue(models[i]!.seed, ids[i]!, j, false)
    if (ids[m] !== undefined) return row(m)
    const present = ids.flatMap((id, i) => (id === undefined ? [] : [i]))
    if (present.length === 1) return row(present[0]!)
    if (ids[0] !== undefined) return row(0)
    return present.reduce((s, i) => s + row(i), 0) / present.length
  }
  const embed = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const saved = yield* Safetensors.read(path.join(out, "model.safetensors"))
    return yield* TensorRef.readFloat32(saved.tensors.get("model.embed_tokens.weight")!)
  })))
  expect(embed.length).toBe(union.length * HIDDEN)
  union.forEach((token, k) => {
    for (let j = 0; j < HIDDEN; j++) expect(embed[k * HIDDEN + j], `${token}[${j}]`).toBeCloseTo((alignedRow(0, token, j) + alignedRow(1, token, j) + alignedRow(2, token, j)) / 3, 4)
  })
})
