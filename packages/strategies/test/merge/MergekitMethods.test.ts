// merge/nuslerp, merge/karcher, merge/sce, merge/nearswap and merge/arcee-fusion end to end: real
// safetensors files in, each stage run with its decoded params, its tensors read back, compared
// with values a numpy float64 script computed from mergekit's definitions
// (reference/mergekit_methods.py → .json) and with the float64 references of mergekitReferences.ts.
// Also DARE/DELLA's default rescale (mergekit's L1) and the parameters each method requires.
import { DType, Model, Safetensors, Stage, TensorRef } from "@crucible/core"
import { Effect, Exit } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import { ArceeFusion } from "../../src/merge/ArceeFusion.ts"
import { Karcher } from "../../src/merge/Karcher.ts"
import { MergeKinds } from "../../src/merge/Kinds.ts"
import { NearSwap } from "../../src/merge/NearSwap.ts"
import { NuSlerp } from "../../src/merge/NuSlerp.ts"
import * as SceKernel from "../../src/merge/kernels/Sce.ts"
import { Sce } from "../../src/merge/Sce.ts"
import { DareLinear, DellaLinear } from "../../src/merge/TaskArithmetic.ts"
import { decodeParams } from "../decodeParams.ts"
import * as Ref from "./mergekitReferences.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
interface Case {
  readonly kind: keyof typeof MergeKinds
  readonly params: Record<string, unknown>
  readonly base: string | null
  readonly models: Array<string>
  readonly expected: Record<string, Array<number>>
}
const reference = JSON.parse(fs.readFileSync(path.join(here, "reference/mergekit_methods.json"), "utf8")) as {
  readonly shapes: Record<string, Array<number>>
  readonly inputs: Record<string, Record<string, Array<number>>>
  readonly cases: ReadonlyArray<Case>
}

// The inputs as real files, written once.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mergekit-methods-"))
const fileOf = (model: string) => path.join(dir, `${model}.safetensors`)
const writeModel = (file: string, tensors: Record<string, ArrayLike<number>>, shapes = reference.shapes) =>
  Effect.runPromise(Safetensors.write(file, Model.make(file, [
    ...Object.entries(tensors).map(([name, values]) => TensorRef.fromBytes(name, "F32", shapes[name]!, DType.fromNumbers(values, "F32"))),
    // Never merged: copied from the base (or the first model).
    TensorRef.fromBytes("steps", "I64", [], DType.fromNumbers([Object.keys(tensors).length], "I64"))
  ])))
const written = Promise.all(Object.entries(reference.inputs).map(([name, tensors]) => writeModel(fileOf(name), tensors)))

const context = { id: "m", resolvePath: (p: string) => p, runDir: dir, cacheDir: dir, dryRun: false }

/** Runs a merge kind on models read from files; returns each output tensor as float64, or the failure. */
const merge = async (kind: Stage.AnyStageKind, params: Record<string, unknown>, base: string | null, models: ReadonlyArray<string>, files = fileOf) => {
  await written
  return Effect.runPromiseExit(Effect.scoped(Effect.gen(function* () {
    const read = (name: string) => Safetensors.read(files(name))
    const inputs = { models: yield* Effect.forEach(models, read), ...(base === null ? {} : { base: yield* read(base) }) }
    const merged: Model.Model = yield* (kind.run as (a: unknown) => Effect.Effect<Model.Model, unknown, never>)({ ...context, kind: kind.kind, params: decodeParams(kind as never, params as never), inputs })
    const out: Record<string, Float64Array> = {}
    for (const t of merged.tensors.values()) out[t.name] = DType.toFloat64(yield* t.read(), t.dtype)
    return out
  })))
}
const succeeded = async (...args: Parameters<typeof merge>) => {
  const exit = await merge(...args)
  if (Exit.isFailure(exit)) throw new Error(String(exit.cause))
  return exit.value
}

// Float32 tolerance: a float64 result rounded once to float32.
const close = (got: ArrayLike<number>, want: ArrayLike<number>, what: string) => {
  expect(got.length, what).toBe(want.length)
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!), `${what}[${i}]: ${got[i]} vs ${want[i]}`).toBeLessThanOrEqual(1e-7 + 2e-7 * Math.abs(want[i]!))
}

const input = (model: string, tensor: string) => reference.inputs[model]![tensor]!

/** The float64 reference of a case, per tensor. */
const referenceOf = (c: Case, tensor: string): Array<number> => {
  const shape = reference.shapes[tensor]!
  const models = c.models.map((m) => input(m, tensor))
  const base = c.base === null ? undefined : input(c.base, tensor)
  const p = c.params as { weight: [number, number]; nuslerp_row_wise?: boolean; nuslerp_flatten?: boolean; max_iter?: number; tol?: number; select_topk?: number; t: number }
  switch (c.kind) {
    case "merge/nuslerp": return Ref.nuslerp(shape, models, base, p.weight, p.nuslerp_row_wise ?? false, p.nuslerp_flatten ?? true)
    case "merge/karcher": return Ref.karcher(models, p.max_iter ?? 10, p.tol ?? 1e-5)
    case "merge/sce": return Ref.sce(models, base!, p.select_topk ?? 1)
    case "merge/nearswap": return Ref.nearswap(models[0]!, base!, p.t)
    case "merge/arcee-fusion": return Ref.arceeFusion(shape, models[0]!, base!)
    default: throw new Error(`no reference for ${c.kind}`)
  }
}

describe("mergekit's methods against numpy and float64 references", () => {
  it.each(reference.cases.map((c) => [`${c.kind} ${JSON.stringify(c.params)}${c.base === null ? "" : " with a base"}`, c] as const))("%s", async (_, c) => {
    const out = await succeeded(MergeKinds[c.kind] as Stage.AnyStageKind, { ...c.params }, c.base, c.models)
    for (const tensor of Object.keys(reference.shapes)) {
      close(out[tensor]!, c.expected[tensor]!, `${tensor} vs numpy`)
      close(out[tensor]!, referenceOf(c, tensor), `${tensor} vs float64 reference`)
      // The numpy script and the references agree to float64 precision: two independent readings of mergekit.
      c.expected[tensor]!.forEach((v, i) => expect(Math.abs(v - referenceOf(c, tensor)[i]!)).toBeLessThan(1e-12))
    }
    expect(Array.from(out.steps!)).toEqual([2])
  })

  it("the cases exercise what they claim: Arcee Fusion takes some entries, NearSwap swaps some, SCE at 0.5 keeps half", () => {
    const find = (kind: string, params: Record<string, unknown> = {}) => reference.cases.find((c) => c.kind === kind && JSON.stringify(c.params) === JSON.stringify(params))!
    const fusion = find("merge/arcee-fusion").expected.w!
    const taken = fusion.filter((v, i) => v !== input("base", "w")[i]).length
    expect(taken).toBeGreaterThan(0)
    expect(taken).toBeLessThan(fusion.length / 2)
    const swap = find("merge/nearswap", { t: 0.02 }).expected.w!
    expect(swap.filter((v, i) => Math.abs(v - input("a", "w")[i]!) < 1e-12).length).toBeGreaterThan(0)
    expect(swap.filter((v, i) => Math.abs(v - input("a", "w")[i]!) > 1e-6).length).toBeGreaterThan(0)
    const sce = find("merge/sce", { select_topk: 0.5 }).expected.w!
    expect(sce.filter((v, i) => v === input("base", "w")[i]).length).toBe(sce.length / 2)
  })
})

describe("method behaviour", () => {
  it("merging copies of one model returns it (nuslerp, karcher, sce, nearswap, arcee-fusion)", async () => {
    const x = (t: string) => input("x", t)
    for (const [kind, params, base, models] of [
      [NuSlerp, { weight: [1, 3] }, null, ["x", "x"]],
      [NuSlerp, { weight: [1, 3], nuslerp_flatten: false }, "x", ["x", "x"]],
      [Karcher, {}, null, ["x", "x", "x"]],
      [Sce, { select_topk: 0.3 }, "x", ["x", "x"]],
      [NearSwap, { t: 0.5 }, "x", ["x"]],
      [ArceeFusion, {}, "x", ["x"]]
    ] as const) {
      const out = await succeeded(kind as Stage.AnyStageKind, params, base, models)
      for (const tensor of Object.keys(reference.shapes)) close(out[tensor]!, x(tensor), `${kind.kind} ${tensor}`)
    }
  })

  it("nuslerp: t = ½ when the weights cancel; a model is returned at t = 0 and t = 1", async () => {
    const half = await succeeded(NuSlerp, { weight: [1, -1] }, null, ["x", "y"])
    close(half.w!, Ref.nuslerp(reference.shapes.w!, [input("x", "w"), input("y", "w")], undefined, [1, 1]), "cancelling weights")
    close((await succeeded(NuSlerp, { weight: [1, 0] }, null, ["x", "y"])).w!, input("x", "w"), "t = 0")
    close((await succeeded(NuSlerp, { weight: [0, 1] }, null, ["x", "y"])).w!, input("y", "w"), "t = 1")
  })

  it("karcher: a zero model counts in the scale, not the direction", async () => {
    const zero = path.join(dir, "zero.safetensors")
    await writeModel(zero, Object.fromEntries(Object.entries(reference.shapes).map(([t, s]) => [t, new Array(s.reduce((a, b) => a * b, 1)).fill(0)])))
    const out = await succeeded(Karcher, {}, null, ["x", "zero"], (n) => (n === "zero" ? zero : fileOf(n)))
    // The direction is x's, the scale (‖x‖ + 0)/2.
    close(out.w!, input("x", "w").map((v) => v / 2), "half of x")
  })

  it("sce: select_topk 0 keeps the base; mean-square weights fall back to 1/N below 1e-6", async () => {
    close((await succeeded(Sce, { select_topk: 0 }, "base", ["a", "b"])).w!, input("base", "w"), "nothing selected")
    // Task vectors of ~1e-4: mean squares ~1e-8, so equal weights.
    const tiny = (model: string) => path.join(dir, `tiny-${model}.safetensors`)
    for (const [m, k] of [["p", 1], ["q", -2]] as const) {
      await writeModel(tiny(m), Object.fromEntries(Object.entries(reference.inputs.base!).map(([t, v]) => [t, v.map((x, i) => Math.fround(x + k * 1e-4 * Math.sin(i + k)))])))
    }
    const files = (n: string) => (n === "base" ? fileOf("base") : tiny(n))
    const out = await succeeded(Sce, {}, "base", ["p", "q"], files)
    const models = ["p", "q"].map((m) => Array.from(Object.entries(reference.inputs.base!).find(([t]) => t === "w")![1], (x, i) => Math.fround(x + (m === "p" ? 1e-4 * Math.sin(i + 1) : -2e-4 * Math.sin(i - 2)))))
    close(out.w!, Ref.sce(models, input("base", "w")), "uniform weights")
  })

  it("sce: equal variances at the cut are kept lowest index first; zero variances are never counted", () => {
    const base = new Float32Array(6)
    // Variances across the two models: 1, 0, 1, 1, 0.25, 0 → 4 nonzero; at 0.5, two of the three 1s.
    const models = [Float32Array.from([1, 0, -1, 1, 0.5, 0]), Float32Array.from([-1, 0, 1, -1, -0.5, 0])]
    expect(Array.from(SceKernel.select(base, models, 0.5))).toEqual([1, 0, 1, 0, 0, 0])
    expect(Array.from(SceKernel.select(base, models, 0.8))).toEqual([1, 0, 1, 1, 0, 0])
    expect(Array.from(SceKernel.select(base, models, 0.2))).toEqual([0, 0, 0, 0, 0, 0])
  })

  it("nearswap: t = 0 keeps the base; a t beyond every difference takes the model", async () => {
    close((await succeeded(NearSwap, { t: 0 }, "base", ["a"])).w!, input("base", "w"), "t = 0")
    close((await succeeded(NearSwap, { t: 100 }, "base", ["a"])).w!, input("a", "w"), "t = 100")
  })

  it("refuses a tensor without the parameters mergekit requires, naming the tensor and the parameter", async () => {
    for (const [kind, params, base, models, parameter] of [
      [NuSlerp, {}, null, ["x", "y"], "weight"],
      [NuSlerp, { weight: [{ filter: "w", value: [1, 1] }] }, null, ["x", "y"], "weight"],
      [NearSwap, {}, "base", ["a"], "t"]
    ] as const) {
      const exit = await merge(kind as Stage.AnyStageKind, params, base, models)
      expect(Exit.isFailure(exit)).toBe(true)
      const message = String(Exit.isFailure(exit) ? exit.cause : "")
      expect(message).toContain(`parameter "${parameter}"`)
      expect(message).toMatch(/tensor "(w|v)"/)
    }
  })

  it("decodes mergekit's parameter names with mergekit's defaults", () => {
    expect(decodeParams(NuSlerp, {})).toMatchObject({ nuslerp_flatten: true, nuslerp_row_wise: false })
    expect(decodeParams(Karcher, {})).toMatchObject({ max_iter: 10, tol: 1e-5 })
    expect(() => decodeParams(Karcher, { max_iter: 1.5 })).toThrow()
    expect(() => decodeParams(Sce, { select_topk: 1.5 })).toThrow()
  })
})

describe("DARE and DELLA rescale by the L1 norm by default, as mergekit", () => {
  const l1 = (out: ArrayLike<number>, base: ArrayLike<number>) => Array.from(out).reduce((s, v, i) => s + Math.abs(v - base[i]!), 0)

  it.each([["merge/dare-linear", DareLinear as Stage.AnyStageKind], ["merge/della-linear", DellaLinear as Stage.AnyStageKind]] as const)("%s keeps the task vector's L1 norm; rescale: unbiased is still 1/p", async (_, kind) => {
    expect(decodeParams(kind, {})).toMatchObject({ rescale: "l1" })
    const params = { density: 0.5, epsilon: 0.1, seed: 3 }
    const byDefault = await succeeded(kind, params, "base", ["a"])
    const base = input("base", "w")
    for (const tensor of ["w", "v"]) {
      const want = l1(input("a", tensor), input("base", tensor))
      expect(Math.abs(l1(byDefault[tensor]!, input("base", tensor)) / want - 1)).toBeLessThan(1e-5)
    }
    // The old default, as written in existing pipelines: survivors divided by their keep probability.
    const unbiased = await succeeded(kind, { ...params, rescale: "unbiased" }, "base", ["a"])
    expect(Array.from(unbiased.w!)).not.toEqual(Array.from(byDefault.w!))
    // Both keep the same entries.
    expect(Array.from(unbiased.w!, (v, i) => v === base[i])).toEqual(Array.from(byDefault.w!, (v, i) => v === base[i]))
  })
})
