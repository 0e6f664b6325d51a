import { Result } from "effect"
import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as Filter from "../../../src/merge/rules/Filter.ts"
import * as Layer from "../../../src/merge/rules/Layer.ts"
import * as ParamValue from "../../../src/merge/rules/ParamValue.ts"
import * as Regex from "../../../src/merge/rules/Regex.ts"
import * as Resolve from "../../../src/merge/rules/Resolve.ts"

const decode = (input: unknown) => Result.getOrThrow(ParamValue.decode("density", input))
const rule = (input: unknown, models = 1) => Result.getOrThrow(Resolve.compile("density", decode(input), models))
const failure = (input: unknown, models = 1) => {
  const d = ParamValue.decode("density", input)
  if (Result.isFailure(d)) return d.failure
  const c = Resolve.compile("density", d.success, models)
  return Result.isFailure(c) ? c.failure : undefined
}

describe("layer positions", () => {
  it("parses the common layer-stack names", () => {
    expect(Layer.layerIndex("model.layers.3.mlp.up_proj.weight")).toBe(3)
    expect(Layer.layerIndex("transformer.h.11.attn.c_attn.weight")).toBe(11)
    expect(Layer.layerIndex("blocks.0.norm1.weight")).toBe(0)
    expect(Layer.layerIndex("bert.encoder.layer.7.output.dense.bias")).toBe(7)
    expect(Layer.layerIndex("model.embed_tokens.weight")).toBeUndefined()
    expect(Layer.layerIndex("lm_head.weight")).toBeUndefined()
    expect(Layer.layerIndex("hh.3.weight")).toBeUndefined()
    expect(Layer.layerCount(["a.layers.0.w", "a.layers.31.w", "a.norm.w"])).toBe(32)
  })

  it("interpolates like mergekit: first layer first value, last layer last value", () => {
    expect(Layer.interpolate([0, 1], Layer.position(0, 5))).toBe(0)
    expect(Layer.interpolate([0, 1], Layer.position(4, 5))).toBe(1)
    expect(Layer.interpolate([0, 1], Layer.position(1, 5))).toBe(0.25)
    expect(Layer.interpolate([0.2, 0.8, 0.4], Layer.position(1, 3))).toBe(0.8)
    expect(Layer.interpolate([0.2, 0.8, 0.4], Layer.position(3, 9))).toBeCloseTo(0.65, 12)
    expect(Layer.position(undefined, 10)).toBe(0)
    expect(Layer.position(0, 1)).toBe(1)
    expect(Layer.interpolate([7], 0.5)).toBe(7)
  })

  it("a gradient is piecewise linear and stays within its values (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: -10, max: 10, noNaN: true }), { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 64 }), (values, count) => {
        for (let i = 0; i < count; i++) {
          const v = Layer.interpolate(values, Layer.position(i, count))
          expect(v).toBeGreaterThanOrEqual(Math.min(...values) - 1e-12)
          expect(v).toBeLessThanOrEqual(Math.max(...values) + 1e-12)
        }
        expect(Layer.interpolate(values, 0)).toBe(values[0])
        expect(Layer.interpolate(values, 1)).toBe(values.at(-1))
      })
    )
  })
})

describe("filters", () => {
  const matches = (pattern: string, name: string) => Result.getOrThrow(Filter.compile(pattern))(name)
  it("globs match the whole name; * crosses dots", () => {
    expect(matches("*.self_attn.*", "model.layers.0.self_attn.q_proj.weight")).toBe(true)
    expect(matches("*.weight", "x.weight_scale")).toBe(false)
    expect(matches("layers.?.mlp*", "layers.3.mlp.w")).toBe(true)
    expect(matches("layers.?.mlp*", "layers.13.mlp.w")).toBe(false)
    expect(matches("a+b(c)*", "a+b(c)x")).toBe(true)
  })
  it("plain words match as substrings, as in mergekit; * matches everything", () => {
    expect(matches("self_attn", "model.layers.0.self_attn.q_proj.weight")).toBe(true)
    expect(matches("mlp", "model.layers.0.self_attn.q_proj.weight")).toBe(false)
    expect(matches("*", "anything")).toBe(true)
  })
  it("regexes are searched, with flags", () => {
    expect(matches("/mlp\\.(up|down)_proj/", "layers.1.mlp.down_proj.weight")).toBe(true)
    expect(matches("/^lm_head/", "model.lm_head.weight")).toBe(false)
    expect(matches("/LM_HEAD/i", "lm_head.weight")).toBe(true)
  })
  it("rejects bad patterns", () => {
    expect(Result.isFailure(Filter.compile("/(unclosed/"))).toBe(true)
    expect(Result.isFailure(Filter.compile("/x/g"))).toBe(true)
    expect(Result.isFailure(Filter.compile(""))).toBe(true)
  })
  it("globs are anchored, case-sensitive, and take dots and regex characters literally", () => {
    expect(matches("layers.*", "model.layers.0.w")).toBe(false)
    expect(matches("*.w", "model.layers.0.w.bias")).toBe(false)
    expect(matches("*self_attn*", "layers.0.self_attn.q")).toBe(true)
    expect(matches("*Self_Attn*", "layers.0.self_attn.q")).toBe(false)
    expect(matches("a.b?", "axbc")).toBe(false)
    expect(matches("a.b?", "a.bc")).toBe(true)
    expect(matches("a?c", "ac")).toBe(false)
    expect(matches("**a**", "xax")).toBe(true)
    expect(matches("^x$*", "^x$y")).toBe(true)
    expect(matches("*[0]*", "w[0]")).toBe(true)
    expect(matches("*\\d*", "a\\d")).toBe(true)
    expect(matches("?", "")).toBe(false)
    expect(matches("*", "")).toBe(true)
  })
  it("adversarial globs and regexes return at once", () => {
    const name = "a".repeat(41)
    const start = performance.now()
    expect(matches("*a".repeat(20) + "*b", name)).toBe(false)
    expect(matches("/(a|aa)+$/", name + "!")).toBe(false)
    expect(matches("/(a|a)*b/", name)).toBe(false)
    expect(matches("/.*.*.*.*.*.*.*.*x/", name.repeat(20))).toBe(false)
    expect(performance.now() - start).toBeLessThan(200)
  })
  it("refuses regexes no linear-time engine can run, and nested repetitions, saying why", () => {
    const reason = (p: string) => Result.match(Filter.compile(p), { onSuccess: () => "", onFailure: (e) => e })
    expect(reason("/(a+)+$/")).toMatch(/regex \/\(a\+\)\+\$\/ is refused: "\(a\+\)\+" repeats "a\+"/)
    expect(reason("/(x*)*y/")).toMatch(/repetition inside a repetition/)
    expect(reason("/(a)\\1/")).toMatch(/backreferences/)
    expect(reason("/(?<n>a)\\k<n>/")).toMatch(/backreferences/)
    expect(reason("/^(?!lm_head)/")).toMatch(/lookarounds/)
    expect(reason("/(?<=a)b/")).toMatch(/lookarounds/)
    expect(reason("/a{1,20000}/")).toMatch(/states/)
    const kind = (body: string) => Result.match(Regex.compile(body, ""), { onSuccess: () => "", onFailure: (e) => `${e._tag}:${e.kind}` })
    expect([kind("(a+)+$"), kind("(a)\\1"), kind("(?=a)"), kind("a{9999}b{9999}")]).toEqual(
      ["RegexRefused:NestedRepetition", "RegexRefused:Backreference", "RegexRefused:Lookaround", "RegexRefused:TooLarge"]
    )
    for (const ok of ["/mlp\\.(up|down)_proj/", "/layers\\.[0-9]+\\.self_attn/", "/^lm_head/", "/(?:\\.[0-9])+/", "/(ab?)+/"]) {
      expect(reason(ok)).toBe("")
    }
  })
  it("regexes mean what they mean in JavaScript", () => {
    const names = ["model.layers.10.self_attn.q_proj.weight", "lm_head.weight", "", "a\nb", "K", "x{2}", "ab]c", "é"]
    const patterns = [
      "/layers\\.[0-9]{1,2}\\./", "/^b/m", "/a$/m", "/a.b/", "/a.b/s", "/\\bweight$/", "/\\Bead/", "/k/iu", "/\\p{L}$/u",
      "/x{2}/", "/x\\{2}/", "/[]/", "/[^]/", "/ab]/", "/(?<n>la)m|HEAD/i", "/^$/", "/(?:^)*lm/", "/\\x6c\\u006d/", "/(|q)z?/"
    ]
    for (const p of patterns) {
      const [, body, flags] = /^\/(.*)\/([a-z]*)$/s.exec(p)!
      const native = new RegExp(body!, flags)
      for (const n of names) expect([p, n, matches(p, n)]).toEqual([p, n, native.test(n)])
    }
  })
})

describe("parameter values", () => {
  it("scalars, per-model lists and gradients", () => {
    expect(rule(0.5).resolve("model.layers.3.w")).toBe(0.5)
    const perModel = rule([0.7, 0.3], 2)
    expect([perModel.resolve("w", 0), perModel.resolve("w", 1)]).toEqual([0.7, 0.3])
    const gradient = rule({ gradient: [0, 1] })
    expect(gradient.resolve("model.layers.0.w", 0, undefined, 5)).toBe(0)
    expect(gradient.resolve("model.layers.2.w", 0, undefined, 5)).toBe(0.5)
    expect(gradient.resolve("model.layers.4.w", 0, undefined, 5)).toBe(1)
    expect(gradient.resolve("model.embed_tokens.weight", 0, undefined, 5)).toBe(0)
    expect(gradient.resolve("anything", 0, 3, 4)).toBe(1)
  })

  it("filter lists: first match wins, values may be gradients or per model", () => {
    const r = rule([
      { filter: "*self_attn*", value: 0.3 },
      { filter: "/mlp\\.(up|down)_proj/", value: { gradient: [0.2, 0.8] } },
      { filter: "*", value: [0.5, 0.4] }
    ], 2)
    expect(r.resolve("model.layers.0.self_attn.q_proj.weight", 1)).toBe(0.3)
    expect(r.resolve("model.layers.3.mlp.up_proj.weight", 0, undefined, 4)).toBeCloseTo(0.8, 12)
    expect(r.resolve("model.norm.weight", 0)).toBe(0.5)
    expect(r.resolve("model.norm.weight", 1)).toBe(0.4)
  })

  it("a per-model list may hold filter lists", () => {
    const r = rule([0.9, [{ filter: "mlp", value: 0.1 }, { filter: "*", value: 0.2 }]], 2)
    expect(r.resolve("layers.0.mlp.w", 0)).toBe(0.9)
    expect(r.resolve("layers.0.mlp.w", 1)).toBe(0.1)
    expect(r.resolve("layers.0.attn.w", 1)).toBe(0.2)
  })

  it("strict mode reports tensors no filter matches; lenient mode leaves them to the default", () => {
    const r = rule([{ filter: "*mlp*", value: 0.3 }])
    expect(r.resolve("layers.0.attn.w")).toBeUndefined()
    const strict = r.strict("layers.0.attn.w")
    expect(Result.isFailure(strict) ? strict.failure._tag : "").toBe("NoRuleMatches")
    expect(Result.isFailure(strict) ? strict.failure.message : "").toContain("layers.0.attn.w")
    expect(Result.getOrThrow(r.strict("layers.0.mlp.w"))).toBe(0.3)
    expect(r.unmatched(["layers.0.mlp.w", "layers.0.attn.w", "lm_head.weight"])).toEqual(["layers.0.attn.w", "lm_head.weight"])
    expect(rule(0.5).unmatched(["x"])).toEqual([])
  })

  it("the single-model resolve of the brief", () => {
    expect(Resolve.resolve(decode({ gradient: [1, 3] }), "h.1.attn.w", undefined, 3)).toBe(2)
    expect(Resolve.resolve(decode([{ filter: "attn", value: 4 }]), "h.1.mlp.w", 1, 3)).toBeUndefined()
  })

  it("rejects malformed rules with typed errors naming the parameter", () => {
    for (const bad of [
      "0.5",
      { gradient: [] },
      { gradient: [0, Number.NaN] },
      { gradiant: [0, 1] },
      [{ filter: "/(/", value: 1 }],
      [{ filter: "x", value: 1, extra: true }],
      [{ filter: "x" }],
      [],
      [0.5, { filter: "x", value: 1 }],
      Number.POSITIVE_INFINITY
    ]) {
      const e = failure(bad)
      expect(e?._tag, JSON.stringify(bad)).toBe("InvalidRule")
      expect(e?.message).toContain('parameter "density"')
    }
    expect(failure([0.1, 0.2, 0.3], 2)?._tag).toBe("PerModelMismatch")
    expect(failure([{ filter: "*", value: [0.1] }], 2)?._tag).toBe("PerModelMismatch")
    expect(failure([0.1, 0.2], 2)).toBeUndefined()
  })
})
