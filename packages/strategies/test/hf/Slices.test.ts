// slice and stack on tiny llama-shaped safetensors models: an orcamini-platy-44layer-like
// frankenmerge (mergekit: layers [0, 24) of A then [20, 40) of B, 44 layers, 20…23 from both)
// scaled to 4-layer toys — [0, 3) of A then [2, 4) of B is 5 layers, layer 2 from both. Slices only rename tensors, so every output tensor
// must hold exactly its source's bytes; the names are checked against mergekit's planner.
import { DType, Model, Safetensors, Stage, TensorRef } from "@crucible/core"
import { Effect, Exit, Schema } from "effect"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Slice, Stack } from "../../src/hf/Slices.ts"
import { writeTinyLlama } from "./tinyLlama.ts"

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../runner/bin/crucible.mjs")

const LAYER_TENSORS = [
  ["input_layernorm.weight", [4]],
  ["self_attn.q_proj.weight", [4, 4]],
  ["mlp.up_proj.weight", [6, 4]]
] as const
const names = (layers: number) => [
  "lm_head.weight", // alphabetical, as checkpoints list them: lm_head first, layers.10 before layers.2
  "model.embed_tokens.weight",
  ...Array.from({ length: layers }, (_, i) => i).sort((a, b) => String(a).localeCompare(String(b))).flatMap((i) => LAYER_TENSORS.map(([n]) => `model.layers.${i}.${n}`)),
  "model.norm.weight"
]
const shapeOf = (name: string): ReadonlyArray<number> =>
  name === "lm_head.weight" || name === "model.embed_tokens.weight" ? [10, 4] : name === "model.norm.weight" ? [4] : LAYER_TENSORS.find(([n]) => name.endsWith(n))![1]

// Every value distinct and tied to its model, tensor and position: a misplaced tensor cannot pass.
const valuesOf = (model: number, tensor: number, n: number) => Float64Array.from({ length: n }, (_, i) => model * 1000 + tensor * 10 + i / 64)

let dir: string
const file = (name: string) => path.join(dir, name)
/** The stored values of each model's tensors, by name. */
const stored = new Map<string, Map<string, Float64Array>>()

const writeToy = async (name: string, seed: number, layers = 4) => {
  const values = new Map<string, Float64Array>()
  const tensors = names(layers).map((t, i) => {
    const shape = shapeOf(t)
    const bytes = DType.fromNumbers(valuesOf(seed, i, shape.reduce((a, b) => a * b, 1)), "F32")
    values.set(t, DType.toFloat64(bytes, "F32"))
    return TensorRef.fromBytes(t, "F32", shape, bytes)
  })
  await Effect.runPromise(Safetensors.write(file(name), Model.make(name, tensors)))
  stored.set(name, values)
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-slices-"))
  await writeToy("a.safetensors", 1)
  await writeToy("b.safetensors", 2)
})
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const context = <P, I>(id: string, params: P, inputs: I) => ({ id, kind: id, params, inputs, resolvePath: (p: string) => p, runDir: dir, cacheDir: dir, dryRun: false })
const decode = <K extends Stage.AnyStageKind>(kind: K, params: unknown) => Schema.decodeUnknownSync(kind.params as Schema.Codec<unknown, unknown>)(params)

const valuesAt = (model: Model.Model) =>
  Effect.gen(function*() {
    const out = new Map<string, Float64Array>()
    for (const t of model.tensors.values()) out.set(t.name, DType.toFloat64(yield* t.read(), t.dtype))
    return out
  })

/** Reads A and B, slices [0, 3) of A and [2, 4) of B, stacks them; `head_from` as given. */
const frankenmerge = (stackParams: Record<string, unknown> = {}) =>
  Effect.scoped(Effect.gen(function*() {
    const a = yield* Safetensors.read(file("a.safetensors"))
    const b = yield* Safetensors.read(file("b.safetensors"))
    const sliceA = yield* Slice.run(context("slice_a", decode(Slice, { layers: [0, 3] }) as never, { model: a }))
    const sliceB = yield* Slice.run(context("slice_b", decode(Slice, { layers: [2, 4] }) as never, { model: b }))
    const stacked = yield* Stack.run(context("stack", decode(Stack, stackParams) as never, { models: [sliceA, sliceB] }))
    return { a, b, sliceA, sliceB, stacked, values: yield* valuesAt(stacked) }
  }))

const layerNames = (i: number) => LAYER_TENSORS.map(([n]) => `model.layers.${i}.${n}`)

describe("slice", () => {
  it("keeps layers [start, end), renumbered from 0, with every tensor outside the layers; bytes are the source's", async () => {
    const { sliceA, sliceB } = await Effect.runPromise(frankenmerge())
    expect([...sliceA.tensors.keys()]).toEqual(["model.embed_tokens.weight", ...[0, 1, 2].flatMap(layerNames), "lm_head.weight", "model.norm.weight"])
    expect([...sliceB.tensors.keys()]).toEqual(["model.embed_tokens.weight", ...[0, 1].flatMap(layerNames), "lm_head.weight", "model.norm.weight"])
    const values = await Effect.runPromise(Effect.scoped(Effect.flatMap(Safetensors.read(file("b.safetensors")), (b) =>
      Effect.flatMap(Slice.run(context("s", decode(Slice, { layers: [1, 4] }) as never, { model: b })), valuesAt))))
    const b = stored.get("b.safetensors")!
    for (let out = 0; out < 3; out++) {
      for (const [n] of LAYER_TENSORS) expect(values.get(`model.layers.${out}.${n}`)).toEqual(b.get(`model.layers.${out + 1}.${n}`))
    }
    for (const n of ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"]) expect(values.get(n)).toEqual(b.get(n))
  })

  it("is lazy: no tensor data is read until a consumer reads, and renamed tensors keep their lineage", async () => {
    let reads = 0
    const counted = (t: TensorRef.TensorRef): TensorRef.TensorRef => ({ ...t, read: (range) => Effect.suspend(() => (reads++, t.read(range))) })
    const bytes = (n: number) => DType.fromNumbers(new Float64Array(n).fill(1), "F32")
    const source = Model.make("toy", ["model.layers.0.w", "model.layers.1.w", "model.norm.weight"].map((n) => counted(TensorRef.fromBytes(n, "F32", [2], bytes(2)))), {}, ["toy.safetensors"])
    const withProvenance: Model.Model = { ...source, provenance: Model.fromFolder("/hf/toy") }
    const out = await Effect.runPromise(Effect.scoped(Slice.run(context("s", decode(Slice, { layers: [1, 2] }) as never, { model: withProvenance }))))
    expect(reads).toBe(0)
    expect([...out.tensors.keys()]).toEqual(["model.layers.0.w", "model.norm.weight"])
    expect(out.tensors.get("model.layers.0.w")!.lineage).toBe(source.tensors.get("model.layers.1.w")!.lineage)
    expect(out.files).toEqual(["toy.safetensors"])
    expect(out.provenance).toEqual({ folders: ["/hf/toy"], donor: "/hf/toy", methods: ["slice"] })
    await Effect.runPromise(out.tensors.get("model.layers.0.w")!.read())
    expect(reads).toBe(1)
  })

  it("a range past the model's layers fails from headers (the check) and at run, naming the range and the layer count", async () => {
    const exit = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const a = yield* Safetensors.read(file("a.safetensors"))
      const params = decode(Slice, { layers: [2, 6] }) as { layers: readonly [number, number] }
      const issues = Slice.check!.headers!({ id: "s", params, inputs: { model: a } })
      expect(issues).toEqual([{ path: ["layers"], message: `layers [2, 6) is out of range: model ${file("a.safetensors")} has 4 layers (0…3; the end is exclusive, at most 4)` }])
      expect(Slice.check!.headers!({ id: "s", params: { layers: [0, 4] }, inputs: { model: a } })).toEqual([])
      return yield* Effect.exit(Slice.run(context("too_far", params as never, { model: a })))
    })))
    expect(Exit.isFailure(exit)).toBe(true)
    const error = Exit.isFailure(exit) ? JSON.stringify(exit.cause) : ""
    expect(error).toContain("SliceError")
    expect(Slice.check!.params!({ id: "s", params: { layers: [3, 3] }, inputs: { model: ["a"] } })[0]!.message).toMatch(/layers \[3, 3\) is empty/)
  })
})

describe("stack", () => {
  it("[0, 3) of A + [2, 4) of B: 5 layers renumbered 0…4, embeddings from A, final norm and lm_head from B (mergekit)", async () => {
    const { stacked, values } = await Effect.runPromise(frankenmerge())
    const a = stored.get("a.safetensors")!
    const b = stored.get("b.safetensors")!
    expect([...stacked.tensors.keys()]).toEqual(["model.embed_tokens.weight", ...[0, 1, 2, 3, 4].flatMap(layerNames), "lm_head.weight", "model.norm.weight"])
    const from = [[a, 0], [a, 1], [a, 2], [b, 2], [b, 3]] as const
    for (let out = 0; out < 5; out++) {
      const [source, layer] = from[out]!
      for (const [n] of LAYER_TENSORS) expect(values.get(`model.layers.${out}.${n}`)).toEqual(source.get(`model.layers.${layer}.${n}`))
    }
    expect(values.get("model.embed_tokens.weight")).toEqual(a.get("model.embed_tokens.weight"))
    expect(values.get("model.norm.weight")).toEqual(b.get("model.norm.weight"))
    expect(values.get("lm_head.weight")).toEqual(b.get("lm_head.weight"))
  })

  it("head_from: first takes the final norm and lm_head from the first model", async () => {
    const { values } = await Effect.runPromise(frankenmerge({ head_from: "first" }))
    const a = stored.get("a.safetensors")!
    for (const n of ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"]) expect(values.get(n)).toEqual(a.get(n))
  })

  it("combines provenance (donor: the first model's folder) and flags models without layers", async () => {
    const toy = (folder: string) => ({ ...Model.make(folder, [TensorRef.fromBytes("model.layers.0.w", "F32", [1], DType.fromNumbers([1], "F32"))]), provenance: Model.fromFolder(folder) })
    const out = await Effect.runPromise(Effect.scoped(Stack.run(context("st", decode(Stack, {}) as never, { models: [toy("/hf/a"), toy("/hf/b")] }))))
    expect(out.provenance).toEqual({ folders: ["/hf/a", "/hf/b"], donor: "/hf/a", methods: ["stack"] })
    const mlp = Model.make("mlp.safetensors", [TensorRef.fromBytes("fc1.weight", "F32", [1], DType.fromNumbers([1], "F32"))])
    expect(Stack.check!.headers!({ id: "st", params: { head_from: "last" }, inputs: { models: [toy("/hf/a"), mlp] } })).toEqual([
      { path: ["models", 1], message: `model mlp.safetensors has no layer tensors (none named like "model.layers.{i}." or "transformer.h.{i}.")` }
    ])
  })
})

describe("through crucible", () => {
  const crucible = (args: ReadonlyArray<string>) => spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", cwd: dir, env: { ...process.env, CI: "1" }, timeout: 60_000 })

  // One run (each CLI start costs seconds): safetensors files in, a file out; HF folders in, a folder out.
  it("crucible run: a frankenmerge writes the stacked safetensors file, and an HF folder whose config.json says the stacked layer count", async () => {
    await writeTinyLlama(file("hf-a"), { layers: 4, seed: 1 })
    await writeTinyLlama(file("hf-b"), { layers: 4, seed: 2 })
    fs.writeFileSync(file("franken.yaml"), `version: 1
name: franken
stages:
  a: { uses: load, with: { path: a.safetensors } }
  b: { uses: load, with: { path: b.safetensors } }
  front: { uses: slice, with: { model: a, layers: [0, 3] } }
  back: { uses: slice, with: { model: b, layers: [2, 4] } }
  franken: { uses: stack, with: { models: [front, back] } }
  out: { uses: save, with: { model: franken, path: out/franken.safetensors } }
  hf_a: { uses: load, with: { path: hf-a } }
  hf_b: { uses: load, with: { path: hf-b } }
  hf_front: { uses: slice, with: { model: hf_a, layers: [0, 3] } }
  hf_back: { uses: slice, with: { model: hf_b, layers: [2, 4] } }
  hf_franken: { uses: stack, with: { models: [hf_front, hf_back] } }
  hf_out: { uses: save, with: { model: hf_franken, path: out/franken/ } }
`)
    const r = crucible(["run", "franken.yaml", "--runs-dir", file("runs"), "--quiet", "--no-cache"])
    expect(r.stderr).toBe("")
    expect(r.status).toBe(0)
    const written = await Effect.runPromise(Effect.scoped(Effect.flatMap(Safetensors.read(file("out/franken.safetensors")), valuesAt)))
    const expected = (await Effect.runPromise(frankenmerge())).values
    expect([...written.keys()].sort()).toEqual([...expected.keys()].sort())
    for (const [name, v] of expected) expect(written.get(name)).toEqual(v)

    const config = JSON.parse(fs.readFileSync(file("out/franken/config.json"), "utf8")) as Record<string, unknown>
    const donor = JSON.parse(fs.readFileSync(file("hf-a/config.json"), "utf8")) as Record<string, unknown>
    expect(config).toMatchObject({ ...donor, num_hidden_layers: 5 })
    expect(fs.existsSync(file("out/franken/tokenizer.json"))).toBe(true)
  })

  it("crucible validate: a range past the layers is a problem at the stage's layers, before anything runs", () => {
    fs.writeFileSync(file("bad.yaml"), `version: 1
name: bad
stages:
  a: { uses: load, with: { path: a.safetensors } }
  front: { uses: slice, with: { model: a, layers: [0, 9] } }
  out: { uses: save, with: { model: front, path: out/bad.safetensors } }
`)
    const r = crucible(["validate", "bad.yaml"])
    expect(r.status).not.toBe(0)
    expect(r.stdout + r.stderr).toContain("layers [0, 9) is out of range")
    expect(r.stdout + r.stderr).toContain("has 4 layers")
    expect(fs.existsSync(file("out/bad.safetensors"))).toBe(false)
  })
})
