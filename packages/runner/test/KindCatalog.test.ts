import { describe, expect, it } from "vitest"
import { Port, Registry, Stage } from "@crucible/core"
import { Builtin, builtinRegistry } from "@crucible/strategies"
import { Effect, Schema } from "effect"
import * as KindCatalog from "../src/KindCatalog.ts"

const catalog = KindCatalog.make(builtinRegistry)
const kind = (name: string) => {
  const k = catalog.find((c) => c.kind === name)
  if (k === undefined) throw new Error(`no kind ${name} in the catalog`)
  return k
}
const param = (kindName: string, name: string) => {
  const p = kind(kindName).params.find((q) => q.name === name)
  if (p === undefined) throw new Error(`${kindName} has no param ${name}`)
  return p
}

describe("the kind catalog", () => {
  it("lists every built-in kind, in the registry's order, with its output port", () => {
    expect(catalog.map((k) => k.kind)).toEqual(Object.keys(Builtin))
    for (const k of catalog) {
      expect(k.description).not.toBe("")
      expect(k.output.port).toBe(Registry.get(builtinRegistry, k.kind)!.output.name)
    }
    expect(kind("save").output.port).toBe("files")
    expect(kind("evaluate").output.port).toBe("metrics")
  })

  it("merge/ties: inputs base and models, rule params density, weights and lambda", () => {
    const ties = kind("merge/ties")
    expect(ties.reference).toBe("https://arxiv.org/abs/2306.01708")
    expect(ties.inputs.find((i) => i.name === "base")).toMatchObject({ port: "model", arity: "one", required: true })
    expect(ties.inputs.find((i) => i.name === "models")).toMatchObject({ port: "model", arity: "many", min: 1, required: true })
    for (const name of ["density", "weights", "lambda"]) {
      const p = param("merge/ties", name)
      expect(p.required).toBe(false)
      // A rule: one number, a gradient, a filter list, or one of those per model.
      expect(p.type).toBe("number | { gradient } | { filter, value }[] | (number | { gradient } | { filter, value }[])[]")
    }
    expect(param("merge/ties", "consensus").allowed).toEqual(["none", "sum", "count"])
    expect(param("merge/ties", "on_missing").allowed).toEqual(["error", "skip", "base"])
  })

  it("train: epochs is a required positive integer; the optional params carry their defaults", () => {
    expect(param("train", "epochs")).toMatchObject({ type: "integer", required: true, range: "> 0" })
    expect(param("train", "epochs").default).toBeUndefined()
    expect(param("train", "batch_size")).toMatchObject({ type: "integer", required: false, range: "> 0", default: 100 })
    expect(param("train", "seed")).toMatchObject({ type: "integer", default: 0 })
    expect(param("train", "optimizer").default).toEqual({ type: "adam", lr: 0.001 })
    expect(param("train", "optimizer").type).toBe("{ type: sgd, lr, momentum?, nesterov?, weightDecay? } | { type: adam | adamw, lr, betas?, eps?, weightDecay? }")
    expect(param("train", "split")).toMatchObject({ default: "train", allowed: ["train", "test", "all", "fit", "val"] })
    expect(kind("train").inputs).toEqual([{ name: "init", port: "model", arity: "optional", min: 0, required: false, description: "start from these weights instead of a fresh initialisation" }])
  })

  it("save and load: required and optional params, allowed values", () => {
    expect(kind("load").inputs).toEqual([])
    expect(param("load", "path")).toMatchObject({ type: "string", required: true })
    expect(param("save", "format")).toMatchObject({ type: "safetensors | tfjs | hf", required: false, allowed: ["safetensors", "tfjs", "hf"] })
    expect(kind("save").inputs.map((i) => [i.name, i.port, i.arity])).toEqual([["model", "model", "one"]])
  })

  it("distill: ranges of its own params", () => {
    expect(param("distill", "alpha")).toMatchObject({ type: "number", range: "0 ≤ x ≤ 1" })
    expect(param("distill", "temperature")).toMatchObject({ type: "number", range: "> 0" })
  })

  it("lists a user's kinds after the built-in ones, from their Schemas", () => {
    const Clip = Stage.define({
      kind: "user/clip",
      version: 2,
      description: "clips every weight to ±limit",
      params: Schema.Struct({
        limit: Schema.Finite.check(Schema.isGreaterThan(0)).annotate({ description: "the largest magnitude kept" }),
        mode: Schema.optional(Schema.Literals(["hard", "soft"]).annotate({ default: "hard" }))
      }),
      inputs: { model: Port.one(Port.ModelPort, "the model to clip") },
      output: Port.ModelPort,
      run: ({ inputs }) => Effect.succeed(inputs.model)
    })
    const user = KindCatalog.make(Registry.extend(builtinRegistry, [Clip]))
    expect(user.at(-1)).toEqual({
      kind: "user/clip",
      version: 2,
      description: "clips every weight to ±limit",
      inputs: [{ name: "model", port: "model", arity: "one", min: 1, required: true, description: "the model to clip" }],
      params: [
        { name: "limit", type: "number", required: true, range: "> 0", description: "the largest magnitude kept" },
        { name: "mode", type: "hard | soft", required: false, default: "hard", allowed: ["hard", "soft"] }
      ],
      output: { port: "model", description: Port.ModelPort.description }
    })
  })

  it("formats each kind as readable lines", () => {
    const text = KindCatalog.format(catalog)
    expect(text).toContain("merge/ties (v1) — TIES")
    expect(text).toMatch(/\n {4}epochs {7}integer \(> 0\) — passes over the training split\n/)
    expect(text).toMatch(/\n {4}batch_size\? {2}integer \(> 0\), default 100 — samples per step\n/)
    expect(text).toContain("    models  [model, …] (≥ 1) — the models to merge")
    expect(text.split("\n\n")).toHaveLength(catalog.length)
  })
})
