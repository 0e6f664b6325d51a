import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Model, Stage } from "@crucible/core"
import { Effect, Exit } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as AtomicFolder from "../../src/hf/AtomicFolder.ts"
import { Convert } from "../../src/io/Convert.ts"
import { Load } from "../../src/io/Load.ts"
import { Save } from "../../src/io/Save.ts"
import { Linear } from "../../src/merge/Linear.ts"
import { Ties } from "../../src/merge/TaskArithmetic.ts"
import { decodeParams } from "../decodeParams.ts"
import { readValues, type Values, writeTinyLlama } from "./tinyLlama.ts"

const root = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-hf-"))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))
const a = path.join(root, "models--acme--tiny-a", "snapshots", "0123abcd")
const b = path.join(root, "tiny-b")
let valuesA: Values
let valuesB: Values
beforeAll(async () => {
  valuesA = await writeTinyLlama(a, { layers: 2, hidden: 8, vocab: 32, seed: 1 })
  valuesB = await writeTinyLlama(b, { layers: 2, hidden: 8, vocab: 32, seed: 2 })
})

const context = (id: string, kind: string) => ({ id, kind, resolvePath: (p: string) => path.resolve(root, p), runDir: root, cacheDir: root, dryRun: false, pipeline: "tiny-merge" })
const load = (p: string) => Load.run({ ...context(path.basename(p), "load"), params: decodeParams(Load, { path: p }), inputs: {} })
const linear = Effect.gen(function* () {
  const models = [yield* load(a), yield* load(b)]
  return yield* Linear.run({ ...context("avg", "merge/linear"), params: decodeParams(Linear, { weights: [0.5, 0.5] }), inputs: { models } })
})
const save = (model: Model.Model, params: Parameters<typeof Save.run>[0]["params"], dryRun = false) =>
  Save.run({ ...context("out", "save"), dryRun, params: decodeParams(Save, params), inputs: { model } })
const run = <A, E>(effect: Effect.Effect<A, E, import("effect").Scope.Scope>) => Effect.runPromise(Effect.scoped(effect))
const sha256 = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex")
const listing = (dir: string) => fs.readdirSync(dir).sort()

describe("load: provenance of Hugging Face folders", () => {
  it("a folder with config.json, or a file in one, is its own donor; a bare file has none", async () => {
    const folder = await run(load(a))
    expect(folder.provenance).toEqual({ folders: [a], donor: a, methods: [] })
    expect((await run(load(path.join(b, "model.safetensors")))).provenance).toEqual(Model.fromFolder(b))
    const bare = path.join(root, "bare.safetensors")
    fs.copyFileSync(path.join(b, "model.safetensors"), bare)
    expect((await run(load(bare))).provenance).toBeUndefined()
  })

  it("merges combine their inputs' provenance: the base is the donor", async () => {
    expect((await run(linear)).provenance).toEqual({ folders: [a, b], donor: a, methods: ["merge/linear"] })
    const ties = await run(Effect.gen(function* () {
      const base = yield* load(b)
      return yield* Ties.run({ ...context("t", "merge/ties"), params: decodeParams(Ties, { density: 0.5 }) as never, inputs: { base, models: [yield* load(a)] } })
    }))
    expect(ties.provenance).toEqual({ folders: [b, a], donor: b, base: b, methods: ["merge/ties"] })
  })
})

describe("save to a folder", () => {
  it("writes shards + index, the donor's config updated, its tokenizer byte for byte, and a model card; the folder reads back as the merge", async () => {
    const out = path.join(root, "out", "merged")
    const written = await run(Effect.flatMap(linear, (m) => save(m, { path: "out/merged/", shard_size: 2000 })))
    const files = listing(out)
    const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f))
    expect(shards.length).toBeGreaterThanOrEqual(2)
    expect(shards[0]).toBe(`model-00001-of-${String(shards.length).padStart(5, "0")}.safetensors`)
    expect(files).toEqual([...shards, "README.md", "config.json", "generation_config.json", "model.safetensors.index.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"].sort())
    // Every file, with its true size and digest, nothing else; no temporary beside the folder.
    expect(written.files.map((f) => path.basename(f.path)).sort()).toEqual(files)
    for (const f of written.files) {
      expect(path.dirname(f.path)).toBe(out)
      expect(f.bytes).toBe(fs.statSync(f.path).size)
      expect(f.sha256).toBe(sha256(f.path))
    }
    expect(listing(path.dirname(out))).toEqual(["merged"])
    for (const name of ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"]) {
      expect(fs.readFileSync(path.join(out, name)).equals(fs.readFileSync(path.join(a, name))), name).toBe(true)
    }
    const config = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"))
    const donor = JSON.parse(fs.readFileSync(path.join(a, "config.json"), "utf8"))
    expect(config).toEqual({ ...donor, torch_dtype: "float32", num_hidden_layers: 2, vocab_size: 32 })
    const card = fs.readFileSync(path.join(out, "README.md"), "utf8")
    expect(card.startsWith('---\nbase_model:\n- "acme/tiny-a"\n- "tiny-b"\nlibrary_name: transformers\ntags:\n- merge\n- crucible\n---\n')).toBe(true)
    expect(card).toContain("`merge/linear`")
    expect(card).toContain("pipeline `tiny-merge` (stage `out`)")
    // Read back (the folder, as load reads it): 0.5·a + 0.5·b, computed in float64, rounded once to float32.
    const merged = await readValues(out)
    expect([...merged.keys()].sort()).toEqual([...valuesA.keys()].sort())
    for (const [name, t] of merged) {
      const x = valuesA.get(name)!.values
      const y = valuesB.get(name)!.values
      expect(t.shape).toEqual(valuesA.get(name)!.shape)
      t.values.forEach((v, i) => expect(Math.abs(v - Math.fround(0.5 * x[i]! + 0.5 * y[i]!))).toBeLessThanOrEqual(1e-6))
    }
  })

  it("one shard suffices: a single model.safetensors, no index; bf16 sets torch_dtype bfloat16", async () => {
    const out = path.join(root, "bf16")
    await run(Effect.flatMap(linear, (m) => save(m, { path: out, format: "hf", dtype: "bf16" })))
    expect(listing(out)).toEqual(["README.md", "config.json", "generation_config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"])
    expect(JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8")).torch_dtype).toBe("bfloat16")
    expect([...(await readValues(out)).values()].every((t) => t.dtype === "BF16")).toBe(true)
  })

  it("plan (dryRun) lists every file the write makes, with its exact size, and writes nothing", async () => {
    const out = path.join(root, "planned")
    const plan = await run(Effect.flatMap(linear, (m) => save(m, { path: `${out}/`, shard_size: 2000 }, true)))
    expect(fs.existsSync(out)).toBe(false)
    const written = await run(Effect.flatMap(linear, (m) => save(m, { path: `${out}/`, shard_size: 2000 })))
    const sizes = (files: ReadonlyArray<{ path: string; bytes: number }>) => Object.fromEntries(files.map((f) => [f.path, f.bytes]))
    expect(sizes(plan.files)).toEqual(sizes(written.files))
  })

  it("config_from, tokenizer_from and chat_template: the config of one folder, the tokenizer of another, the template set", async () => {
    const other = path.join(root, "other-tokenizer")
    await writeTinyLlama(other, { seed: 9 })
    const out = path.join(root, "mixed")
    const bare = path.join(root, "bare2.safetensors")
    fs.copyFileSync(path.join(a, "model.safetensors"), bare)
    await run(Effect.flatMap(load(bare), (model) => save(model, { path: `${out}/`, config_from: "tiny-b", tokenizer_from: "other-tokenizer", chat_template: "{% for m in messages %}{{ m.content }}{% endfor %}" })))
    expect(JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"))).toEqual(JSON.parse(fs.readFileSync(path.join(b, "config.json"), "utf8")))
    expect(fs.readFileSync(path.join(out, "tokenizer.json")).equals(fs.readFileSync(path.join(other, "tokenizer.json")))).toBe(true)
    const tokenizerConfig = JSON.parse(fs.readFileSync(path.join(out, "tokenizer_config.json"), "utf8"))
    expect(tokenizerConfig).toEqual({ ...JSON.parse(fs.readFileSync(path.join(other, "tokenizer_config.json"), "utf8")), chat_template: "{% for m in messages %}{{ m.content }}{% endfor %}" })
    expect(fs.readFileSync(path.join(out, "generation_config.json")).equals(fs.readFileSync(path.join(b, "generation_config.json")))).toBe(true)
  })

  it("convert to a folder takes save's config_from, tokenizer_from and chat_template too (and reads them)", async () => {
    const bare = path.join(root, "bare3.safetensors")
    fs.copyFileSync(path.join(a, "model.safetensors"), bare)
    const out = path.join(root, "converted")
    const params = { from: "bare3.safetensors", path: "converted/", config_from: "tiny-b", tokenizer_from: "tiny-b", chat_template: "chatml" }
    expect(Stage.readsOf(Convert, decodeParams(Convert, params))).toEqual([{ file: "bare3.safetensors" }, { file: "tiny-b" }, { file: "tiny-b" }])
    await run(Convert.run({ ...context("conv", "convert"), params: decodeParams(Convert, params), inputs: {} }))
    expect(JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"))).toEqual(JSON.parse(fs.readFileSync(path.join(b, "config.json"), "utf8")))
    expect(fs.readFileSync(path.join(out, "tokenizer.json")).equals(fs.readFileSync(path.join(b, "tokenizer.json")))).toBe(true)
    expect(JSON.parse(fs.readFileSync(path.join(out, "tokenizer_config.json"), "utf8")).chat_template).toContain("<|im_start|>")
  })

  it("without a donor: the weights and a card that says no config was available", async () => {
    const bare = path.join(root, "bare3.safetensors")
    fs.copyFileSync(path.join(a, "model.safetensors"), bare)
    const out = path.join(root, "no-donor")
    await run(Effect.flatMap(load(bare), (m) => save(m, { path: `${out}/` })))
    expect(listing(out)).toEqual(["README.md", "model.safetensors"])
    expect(fs.readFileSync(path.join(out, "README.md"), "utf8")).toContain("No `config.json` was available")
  })

  it("replaces an existing output folder whole, and refuses a folder the model is read from", async () => {
    const out = path.join(root, "replaced")
    fs.mkdirSync(out)
    fs.writeFileSync(path.join(out, "model-00001-of-00009.safetensors"), "stale")
    await run(Effect.flatMap(linear, (m) => save(m, { path: out })))
    expect(listing(out)).not.toContain("model-00001-of-00009.safetensors")
    expect(listing(root).filter((n) => n.startsWith(".replaced"))).toEqual([])
    const exit = await Effect.runPromise(Effect.exit(Effect.scoped(Effect.flatMap(load(b), (m) => save(m, { path: `${b}/` })))))
    expect(Exit.isFailure(exit) && String(exit.cause)).toMatch(/tiny-b.*model\.safetensors.*read from/)
    expect(fs.existsSync(path.join(b, "README.md"))).toBe(false)
  })

  it("refuses to replace a non-empty folder that holds no model (a user's own files), in the plan too; an empty folder is written", async () => {
    const mine = path.join(root, "my-documents")
    fs.mkdirSync(mine)
    fs.writeFileSync(path.join(mine, "thesis.txt"), "years of work")
    for (const dryRun of [true, false]) {
      const exit = await Effect.runPromise(Effect.exit(Effect.scoped(Effect.flatMap(linear, (m) => save(m, { path: `${mine}/` }, dryRun)))))
      expect(Exit.isFailure(exit) && String(exit.cause)).toMatch(/my-documents.*holds no model.*thesis\.txt/)
    }
    expect(listing(mine)).toEqual(["thesis.txt"])
    expect(listing(root).filter((n) => n.startsWith(".my-documents"))).toEqual([])
    const empty = path.join(root, "empty-out")
    fs.mkdirSync(empty)
    await run(Effect.flatMap(linear, (m) => save(m, { path: empty })))
    expect(listing(empty)).toContain("config.json")
  })

  it("a write that fails half-way leaves no folder and no temporary", async () => {
    const out = path.join(root, "failed")
    const broken = Effect.map(linear, (m) => {
      const tensors = [...m.tensors.values()]
      const last = tensors.at(-1)!
      return Model.make(m.source, [...tensors.slice(0, -1), { ...last, read: () => Effect.fail({ _tag: "IoError", message: "disk gone" } as never) }], m.metadata, m.files)
    })
    const exit = await Effect.runPromise(Effect.exit(Effect.scoped(Effect.flatMap(broken, (m) => save(m, { path: `${out}/`, shard_size: 2000 })))))
    expect(Exit.isFailure(exit)).toBe(true)
    expect(listing(root).filter((n) => n.startsWith("failed") || n.startsWith(".failed"))).toEqual([])
  })

  it("sweep: a dead writer's temporary folder is removed; a folder it moved aside is put back", async () => {
    const target = path.join(root, "swept")
    const dead = `${2 ** 22 + 12345}-0` // no such pid (above the kernel's pid_max)
    fs.mkdirSync(path.join(root, `.swept.${dead}.0123456789ab.partial`))
    fs.mkdirSync(path.join(root, `.swept.replaced.${dead}.0123456789ab.partial`))
    fs.writeFileSync(path.join(root, `.swept.replaced.${dead}.0123456789ab.partial`, "config.json"), "{}")
    const swept = await Effect.runPromise(AtomicFolder.sweep(target))
    expect(swept.length).toBe(2)
    expect(listing(target)).toEqual(["config.json"])
    expect(listing(root).filter((n) => n.startsWith(".swept"))).toEqual([])
  })
})
