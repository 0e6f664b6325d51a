// extract/lora on real safetensors files: a tiny llama-like base and fine-tunes whose ΔW numpy
// decomposed (reference/lora_reference.py → lora_reference.json); the adapter folder is read back
// and B·A compared with ΔW independently of the stage's own report.
import { describe, expect, it } from "vitest"
import { DType, Model, Safetensors, TensorRef } from "@crucible/core"
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { LoraExtract } from "../../src/extract/Lora.ts"
import { decodeParams } from "../decodeParams.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const reference = JSON.parse(fs.readFileSync(path.join(here, "reference/lora_reference.json"), "utf8")) as {
  shapes: Record<string, Array<number>>
  base: Record<string, Array<number>>
  fine_tunes: Record<string, Record<string, Array<number>>>
  expected: Record<string, Record<string, { singular_values: Array<number>; rank_for_energy: Record<string, number>; error_by_rank: Array<number> }>>
}
const LINEAR = Object.keys(reference.expected["decaying"]!)
const Q = "model.layers.0.self_attn.q_proj"

const writeModel = (file: string, tensors: Record<string, Array<number>>, shapes = reference.shapes) =>
  Effect.runPromise(Safetensors.write(file, Model.make(file, Object.entries(tensors).map(([name, values]) => TensorRef.fromBytes(name, "F32", shapes[name]!, DType.fromNumbers(values, "F32"))))))

// A folder with base.safetensors, planted.safetensors and decaying.safetensors.
const fixture = async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lora-"))
  await writeModel(path.join(dir, "base.safetensors"), reference.base)
  for (const [key, tensors] of Object.entries(reference.fine_tunes)) await writeModel(path.join(dir, `${key}.safetensors`), tensors)
  return dir
}

const readTensors = (file: string) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const model = yield* Safetensors.read(file)
    const out = new Map<string, { dtype: string; shape: ReadonlyArray<number>; values: Float64Array }>()
    for (const t of model.tensors.values()) out.set(t.name, { dtype: t.dtype, shape: t.shape, values: DType.toFloat64(yield* t.read(), t.dtype) })
    return out
  })))

const extract = (dir: string, fineTune: string, params: Record<string, unknown>) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const model = yield* Safetensors.read(path.join(dir, `${fineTune}.safetensors`))
    const base = yield* Safetensors.read(path.join(dir, "base.safetensors"))
    return yield* Effect.result(LoraExtract.run({
      id: "lora", kind: "extract/lora", params: decodeParams(LoraExtract, params as never), inputs: { model, base },
      resolvePath: (p) => path.resolve(dir, p), runDir: dir, cacheDir: dir, dryRun: false
    }))
  })))

interface Report {
  readonly relative_error: number
  readonly layers: ReadonlyArray<{ module: string; shape: [number, number]; rank: number; relative_error: number; singular_values: Array<number> }>
  readonly not_captured: ReadonlyArray<string>
}
const readJson = <A>(file: string) => JSON.parse(fs.readFileSync(file, "utf8")) as A

// ‖ΔW − B·A‖/‖ΔW‖ from the written factors, for a weight ΔW stored out×in.
const errorOf = (tensors: Awaited<ReturnType<typeof readTensors>>, fineTune: string, weight: string) => {
  const module = weight.slice(0, -".weight".length)
  const a = tensors.get(`base_model.model.${module}.lora_A.weight`)!
  const b = tensors.get(`base_model.model.${module}.lora_B.weight`)!
  const [m, r] = b.shape as [number, number]
  const n = a.shape[1]!
  const ft = reference.fine_tunes[fineTune]![weight]!
  let residual = 0
  let norm = 0
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let ba = 0
    for (let c = 0; c < r; c++) ba += b.values[i * r + c]! * a.values[c * n + j]!
    const d = Math.fround(ft[i * n + j]!) - Math.fround(reference.base[weight]![i * n + j]!)
    residual += (d - ba) ** 2
    norm += d * d
  }
  return Math.sqrt(residual / norm)
}

describe("extract/lora", () => {
  it("rank 2 on a planted rank-2 ΔW: exact reconstruction, a PEFT folder with PEFT names and shapes", async () => {
    const dir = await fixture()
    const result = await extract(dir, "planted", { path: "adapter", rank: 2 })
    expect(result._tag).toBe("Success")
    const folder = path.join(dir, "adapter")
    expect(fs.readdirSync(folder).sort()).toEqual(["adapter_config.json", "adapter_model.safetensors", "reconstruction.json"])
    // No staging folder is left beside it.
    expect(fs.readdirSync(dir).filter((f) => f.startsWith("."))).toEqual([])
    if (result._tag === "Success") {
      expect(result.success.files.map((f) => path.basename(f.path))).toEqual(["adapter_config.json", "adapter_model.safetensors", "reconstruction.json"])
      for (const f of result.success.files) {
        expect(f.bytes).toBe(fs.statSync(f.path).size)
        expect(f.sha256).toMatch(/^[0-9a-f]{64}$/)
      }
    }
    const config = readJson<Record<string, unknown>>(path.join(folder, "adapter_config.json"))
    expect(config).toMatchObject({ peft_type: "LORA", task_type: "CAUSAL_LM", r: 2, lora_alpha: 2, rank_pattern: {}, alpha_pattern: {}, base_model_name_or_path: path.join(dir, "base.safetensors") })
    expect(config["target_modules"]).toEqual(["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"])
    const tensors = await readTensors(path.join(folder, "adapter_model.safetensors"))
    expect(tensors.size).toBe(2 * LINEAR.length)
    for (const weight of LINEAR) {
      const [out, inp] = reference.shapes[weight]!
      const module = weight.slice(0, -".weight".length)
      expect(tensors.get(`base_model.model.${module}.lora_A.weight`)).toMatchObject({ dtype: "F32", shape: [2, inp] })
      expect(tensors.get(`base_model.model.${module}.lora_B.weight`)).toMatchObject({ dtype: "F32", shape: [out, 2] })
      expect(errorOf(tensors, "planted", weight)).toBeLessThan(1e-6)
    }
    const report = readJson<Report>(path.join(folder, "reconstruction.json"))
    expect(report.relative_error).toBeLessThan(1e-6)
    expect(report.layers.map((l) => l.module)).toEqual(LINEAR.map((w) => w.slice(0, -".weight".length)))
    for (const l of report.layers) expect(l.relative_error).toBeLessThan(1e-6)
    expect(report.layers[0]!.singular_values.slice(0, 2).map((s) => +s.toFixed(6))).toEqual([1.5, 0.75])
    // The norm and the left-out embedding moved, and no LoRA carries them.
    expect(report.not_captured).toEqual(["model.embed_tokens.weight", "model.layers.0.input_layernorm.weight"])
  })

  it("energy 0.9 picks the rank numpy picks for each layer; rank_pattern holds the smaller ones; errors match numpy", async () => {
    const dir = await fixture()
    expect((await extract(dir, "decaying", { path: "adapter", energy: 0.9 }))._tag).toBe("Success")
    const folder = path.join(dir, "adapter")
    const report = readJson<Report>(path.join(folder, "reconstruction.json"))
    const want = reference.expected["decaying"]!
    for (const l of report.layers) {
      const w = want[`${l.module}.weight`]!
      expect(l.rank, l.module).toBe(w.rank_for_energy["0.9"])
      // float32 factors: numpy's float64 error within float32 rounding.
      expect(Math.abs(l.relative_error - w.error_by_rank[l.rank - 1]!)).toBeLessThan(1e-6)
    }
    const tensors = await readTensors(path.join(folder, "adapter_model.safetensors"))
    for (const weight of LINEAR) expect(Math.abs(errorOf(tensors, "decaying", weight) - want[weight]!.error_by_rank[want[weight]!.rank_for_energy["0.9"]! - 1]!)).toBeLessThan(1e-6)
    const config = readJson<{ r: number; lora_alpha: number; rank_pattern: Record<string, number>; alpha_pattern: Record<string, number> }>(path.join(folder, "adapter_config.json"))
    expect(config.r).toBe(5)
    expect(config.lora_alpha).toBe(5)
    expect(config.rank_pattern).toEqual({ "model.layers.0.self_attn.k_proj": 4, "model.layers.0.self_attn.v_proj": 4 })
    expect(config.alpha_pattern).toEqual(config.rank_pattern)
  })

  it("modules filters, embeddings as lora_embedding_A/B, a BF16 adapter, and a folder replaced whole", async () => {
    const dir = await fixture()
    expect((await extract(dir, "planted", { path: "adapter", rank: 2, modules: ["*.q_proj", "/v_proj$/"] }))._tag).toBe("Success")
    const folder = path.join(dir, "adapter")
    expect(readJson<Report>(path.join(folder, "reconstruction.json")).layers.map((l) => l.module)).toEqual([Q, "model.layers.0.self_attn.v_proj"])
    expect(readJson<{ target_modules: Array<string> }>(path.join(folder, "adapter_config.json")).target_modules).toEqual(["q_proj", "v_proj"])

    // Written again over the same folder: the old files are gone, the new ones in place.
    expect((await extract(dir, "planted", { path: "adapter", rank: 2, embeddings: true, modules: ["embed_tokens", "lm_head"], dtype: "bfloat16" }))._tag).toBe("Success")
    const tensors = await readTensors(path.join(folder, "adapter_model.safetensors"))
    expect([...tensors.keys()]).toEqual([
      "base_model.model.model.embed_tokens.lora_embedding_A", "base_model.model.model.embed_tokens.lora_embedding_B",
      "base_model.model.lm_head.lora_A.weight", "base_model.model.lm_head.lora_B.weight"
    ])
    const [vocab, dim] = reference.shapes["model.embed_tokens.weight"]!
    const embA = tensors.get("base_model.model.model.embed_tokens.lora_embedding_A")!
    const embB = tensors.get("base_model.model.model.embed_tokens.lora_embedding_B")!
    expect(embA).toMatchObject({ dtype: "BF16", shape: [2, vocab] })
    expect(embB).toMatchObject({ dtype: "BF16", shape: [dim, 2] })
    // PEFT's embedding delta is (B·A)ᵀ: compare with ΔW (vocab × dim), at bf16 precision.
    const ft = reference.fine_tunes["planted"]!["model.embed_tokens.weight"]!
    const base = reference.base["model.embed_tokens.weight"]!
    let residual = 0
    let norm = 0
    for (let v = 0; v < vocab!; v++) for (let d = 0; d < dim!; d++) {
      const ba = embB.values[d * 2]! * embA.values[v]! + embB.values[d * 2 + 1]! * embA.values[vocab! + v]!
      const delta = Math.fround(ft[v * dim! + d]!) - Math.fround(base[v * dim! + d]!)
      residual += (delta - ba) ** 2
      norm += delta * delta
    }
    const report = readJson<Report>(path.join(folder, "reconstruction.json"))
    expect(Math.sqrt(residual / norm)).toBeLessThan(1e-2)
    expect(report.layers[0]!.relative_error).toBeCloseTo(Math.sqrt(residual / norm), 6)
    expect(report.layers[0]!.shape).toEqual([vocab, dim])
    // lm_head did not move: zero factors, no error.
    expect(report.layers[1]).toMatchObject({ module: "lm_head", rank: 2, relative_error: 0 })
    expect(readJson<{ target_modules: Array<string> }>(path.join(folder, "adapter_config.json")).target_modules).toEqual(["embed_tokens", "lm_head"])
    expect(fs.readdirSync(dir).filter((f) => f.startsWith("."))).toEqual([])
  })

  it("refuses a base of other shapes, a module filter that selects nothing, a file as the folder, an integer dtype", async () => {
    const dir = await fixture()
    const shapes = { ...reference.shapes, [`${Q}.weight`]: [4, 16] }
    await writeModel(path.join(dir, "other.safetensors"), reference.base, shapes)
    fs.renameSync(path.join(dir, "base.safetensors"), path.join(dir, "real-base.safetensors"))
    fs.renameSync(path.join(dir, "other.safetensors"), path.join(dir, "base.safetensors"))
    const mismatch = await extract(dir, "planted", { path: "adapter", rank: 2 })
    expect(mismatch._tag === "Failure" && mismatch.failure._tag).toBe("ExtractInputsMismatch")
    expect(mismatch._tag === "Failure" && mismatch.failure.message).toMatch(/q_proj\.weight: 8×8 in the fine-tune, 4×16 in the base/)
    fs.renameSync(path.join(dir, "real-base.safetensors"), path.join(dir, "base.safetensors"))

    const nothing = await extract(dir, "planted", { path: "adapter", rank: 2, modules: ["*.c_attn"] })
    expect(nothing._tag === "Failure" && nothing.failure.message).toMatch(/no module matches \["\*\.c_attn"\]/)
    fs.writeFileSync(path.join(dir, "taken"), "x")
    const file = await extract(dir, "planted", { path: "taken", rank: 2 })
    expect(file._tag === "Failure" && file.failure.message).toMatch(/taken.*a file with that name exists/s)
    expect(fs.readFileSync(path.join(dir, "taken"), "utf8")).toBe("x")
    const integer = await extract(dir, "planted", { path: "adapter", rank: 2, dtype: "int8" })
    expect(integer._tag === "Failure" && integer.failure._tag).toBe("InvalidExtractParams")
    expect(fs.existsSync(path.join(dir, "adapter"))).toBe(false)
  })

  it("params: rank or energy, exactly one (the kind's params check)", () => {
    const issues = (params: Record<string, unknown>) =>
      LoraExtract.check!.params!({ id: "lora", params: decodeParams(LoraExtract, params as never), inputs: { model: ["ft"], base: ["base"] } })
    expect(issues({ path: "a", rank: 4 })).toEqual([])
    expect(issues({ path: "a", energy: 0.99 })).toEqual([])
    expect(issues({ path: "a" })[0]!.message).toMatch(/either `rank: N` or `energy: 0.99`/)
    expect(issues({ path: "a", rank: 4, energy: 0.9 })[0]!.path).toEqual(["energy"])
    expect(() => decodeParams(LoraExtract, { path: "a", energy: 1.5 } as never)).toThrow()
    expect(decodeParams(LoraExtract, { path: "a", rank: 4 } as never)).toMatchObject({ embeddings: false })
  })

  it("headers check (validate/preflight): a base of another shape, and an empty selection, named at base/modules", async () => {
    const dir = await fixture()
    await writeModel(path.join(dir, "other.safetensors"), reference.base, { ...reference.shapes, [`${Q}.weight`]: [4, 16] })
    const issues = (other: string, params: Record<string, unknown>) =>
      Effect.runPromise(Effect.scoped(Effect.gen(function* () {
        const model = yield* Safetensors.read(path.join(dir, "planted.safetensors"))
        const base = yield* Safetensors.read(path.join(dir, other))
        return LoraExtract.check!.headers!({ id: "lora", params: decodeParams(LoraExtract, params as never), inputs: { model, base } })
      })))
    expect(await issues("base.safetensors", { path: "a", rank: 2 })).toEqual([])
    expect(await issues("other.safetensors", { path: "a", rank: 2 })).toEqual([{ path: ["base"], message: `${Q}.weight: 8×8 in the fine-tune, 4×16 in the base` }])
    expect(await issues("base.safetensors", { path: "a", rank: 2, modules: ["c_attn"] })).toMatchObject([{ path: ["modules"] }])
  })

  it("`crucible run` of a YAML pipeline writes the adapter folder", async () => {
    const dir = await fixture()
    fs.writeFileSync(path.join(dir, "p.yaml"), [
      "version: 1",
      "name: lora",
      "stages:",
      "  ft: { uses: load, with: { path: planted.safetensors } }",
      "  base: { uses: load, with: { path: base.safetensors } }",
      "  adapter: { uses: extract/lora, with: { model: ft, base: base, path: out/adapter, rank: 2, modules: [self_attn] } }",
      ""
    ].join("\n"))
    const cli = path.resolve(here, "../../../runner/bin/crucible.mjs")
    const run = spawnSync(process.execPath, [cli, "run", "p.yaml", "--no-cache"], { cwd: dir, encoding: "utf8", env: { ...process.env, CI: "1" }, timeout: 60_000 })
    expect(run.status, run.stderr + run.stdout).toBe(0)
    const folder = path.join(dir, "out/adapter")
    expect(fs.readdirSync(folder).sort()).toEqual(["adapter_config.json", "adapter_model.safetensors", "reconstruction.json"])
    const report = readJson<Report>(path.join(folder, "reconstruction.json"))
    expect(report.layers.map((l) => l.module.split(".").at(-1))).toEqual(["q_proj", "k_proj", "v_proj", "o_proj"])
    expect(report.relative_error).toBeLessThan(1e-6)
  })
})
