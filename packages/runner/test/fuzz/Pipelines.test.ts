// Fuzzing pipeline texts (issue 19): generated and mutated YAML — random structures, deep nesting,
// huge keys, aliases (legit, missing, circular, exponential), broken syntax, mutations of the
// examples — through the in-process parse and validation with the built-in kinds, and a few
// hostile files through the real `crucible validate`. Every case ends as a pipeline or a
// PipelineInvalid with problems (never a throw or a defect), within a time bound; the CLI exits 0
// or 2 with no stack trace. Seeded by vitest.setup.ts; bounded to ~15 s.
import { Limits, Yaml } from "@crucible/core"
import { builtinRegistry } from "@crucible/strategies"
import { Cause, Effect, Exit } from "effect"
import fc from "fast-check"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { stringify } from "yaml"
import { describe, expect, it } from "vitest"
import { crucible, startCrucible } from "../e2e/cli.ts"

const CASE_MS = 3_000

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..")
const examples = fs.readdirSync(path.join(root, "examples"))
  .map((d) => path.join(root, "examples", d, "pipeline.yaml"))
  .filter((f) => fs.existsSync(f))
  .map((f) => fs.readFileSync(f, "utf8"))

/** Decodes `text`; fails the test on a throw, a defect, or a case slower than its bound. */
const decodes = (text: string): "valid" | "invalid" => {
  const started = performance.now()
  const exit = Effect.runSyncExit(Yaml.decode(text, builtinRegistry, "fuzz.yaml"))
  const ms = performance.now() - started
  if (ms > CASE_MS) throw new Error(`took ${Math.round(ms)} ms (bound ${CASE_MS}) on:\n${text.slice(0, 500)}`)
  if (Exit.isSuccess(exit)) return "valid"
  const failure = Cause.findErrorOption(exit.cause)
  if (failure._tag === "None") throw new Error(`a defect, not a PipelineInvalid: ${Cause.pretty(exit.cause)}\non:\n${text.slice(0, 500)}`)
  expect(failure.value._tag).toBe("PipelineInvalid")
  expect(failure.value.problems.length).toBeGreaterThan(0)
  return "invalid"
}

const header = "version: 1\nname: fuzz\n"

const yamlChars = fc.constantFrom(..."[]{}:,-?&*!|>'\"#%@`\n\t  abc01.".split(""))

/** A text with a few random edits: characters inserted, ranges deleted, lines duplicated or swapped. */
const mutate = (text: string) =>
  fc.array(fc.tuple(fc.nat(), fc.nat({ max: 4 }), fc.string({ unit: yamlChars, maxLength: 8 })), { minLength: 1, maxLength: 6 }).map((edits) => {
    let out = text
    for (const [at, op, chars] of edits) {
      const i = out.length === 0 ? 0 : at % out.length
      const lines = out.split("\n")
      const l = lines.length === 0 ? 0 : at % lines.length
      if (op === 0) out = out.slice(0, i) + chars + out.slice(i)
      else if (op === 1) out = out.slice(0, i) + out.slice(i + 1 + (at % 7))
      else if (op === 2) out = [...lines.slice(0, l + 1), lines[l] ?? "", ...lines.slice(l + 1)].join("\n")
      else if (op === 3) out = [...lines.slice(0, l), lines[(l + 1) % lines.length] ?? "", lines[l] ?? "", ...lines.slice(l + 2)].join("\n")
      else out = out.slice(0, i) + chars.repeat(50) + out.slice(i)
    }
    return out
  })

/** Nesting of a random shape and depth (beyond the limit, sometimes), in flow or block style. */
const nested = fc.tuple(fc.integer({ min: 1, max: 300 }), fc.constantFrom("[", "{a: ", "- ", "block")).map(([depth, open]) => {
  if (open === "block") return `${header}stages:\n  a:\n${Array.from({ length: depth }, (_, i) => `${"  ".repeat(i + 2)}k:`).join("\n")}\n`
  const close = open === "[" ? "]" : open === "{a: " ? "}" : ""
  return `${header}stages:\n  a: { uses: load, with: { path: ${open === "- " ? "\n    " : ""}${open.repeat(depth)}x${close.repeat(depth)} } }\n`
})

/** Aliases: reused, to a missing anchor, inside their own anchor, and multiplying (billion laughs). */
const aliased = fc.tuple(fc.integer({ min: 1, max: 200 }), fc.constantFrom("reuse", "missing", "circular", "laughs"), fc.integer({ min: 2, max: 12 })).map(([n, shape, k]) => {
  if (shape === "reuse") {
    return `${header}stages:\n  s0: { uses: load, with: &w { path: m.safetensors } }\n${Array.from({ length: n }, (_, i) => `  s${i + 1}: { uses: load, with: *w }`).join("\n")}\n`
  }
  if (shape === "missing") return `${header}stages:\n  a: { uses: load, with: *w${n} }\n`
  if (shape === "circular") return `${header}stages:\n  a: &a { uses: load, with: { path: *a } }\n`
  const levels = Array.from({ length: k }, (_, i) => `    l${i + 1}: &l${i + 1} [${Array(10).fill(`*l${i}`).join(", ")}]`)
  return `${header}stages:\n  a:\n    uses: load\n    with:\n      path: x\n    description: &l0 lol\n  b:\n    uses: load\n    with:\n${levels.join("\n")}\n`
})

/** Random JSON-like values as stages, and keys of any size. */
const structured = fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), fc.string({ minLength: 5_000, maxLength: 20_000 })), fc.jsonValue({ maxDepth: 6 }), { maxKeys: 8 })
  .map((stages) => `${header}${stringify({ stages })}`)

describe("pipeline texts, fuzzed in process", () => {
  it("an example's mutations decode to a pipeline or to problems, each within its bound", () => {
    fc.assert(fc.property(fc.constantFrom(...examples).chain(mutate), (text) => void decodes(text)), { numRuns: 150 })
  })

  it("generated structures, nesting, aliases and raw YAML noise decode to a pipeline or to problems", () => {
    const noise = fc.string({ unit: yamlChars, maxLength: 400 }).map((s) => `${header}stages:\n  ${s}`)
    fc.assert(fc.property(fc.oneof(nested, aliased, structured, noise), (text) => void decodes(text)), { numRuns: 250 })
  })

  it("a pipeline reusing one `with:` block through 200 aliases is valid; a missing anchor and an alias bomb are positioned problems", () => {
    const reuse = `${header}stages:\n  s0: { uses: load, with: &w { path: m.safetensors } }\n${Array.from({ length: 200 }, (_, i) => `  s${i + 1}: { uses: load, with: *w }`).join("\n")}\n`
    expect(decodes(reuse)).toBe("valid")
    const problems = Yaml.check(`${header}stages:\n  a: { uses: load, with: *nope }\n`, builtinRegistry).problems
    expect(problems.map((p) => [p.code, p.position])).toEqual([["YamlSyntax", { line: 4, col: 26 }]])
    const bomb = Yaml.check(`${header}l0: &l0 lol\n${Array.from({ length: 9 }, (_, i) => `l${i + 1}: &l${i + 1} [${Array(10).fill(`*l${i}`).join(", ")}]`).join("\n")}\n`, builtinRegistry)
    expect(bomb.problems.map((p) => p.code)).toEqual(["LimitExceeded"])
  })

  it("every limit is a LimitExceeded problem at a position, and raising it lets the file through", () => {
    const stages = (n: number) => `${header}stages:\n${Array.from({ length: n }, (_, i) => `  s${i}: { uses: load, with: { path: m${i}.safetensors } }`).join("\n")}\n`
    const low = { ...Limits.defaults, stages: 10, values: 100, keys: 5, depth: 8, aliases: 3, bytes: 4_000 }
    const cases: ReadonlyArray<readonly [string, keyof Limits.Limits]> = [
      [stages(11), "stages"],
      [`${header}stages: {${Array.from({ length: 11 }, (_, i) => `s${i}: { uses: load, with: { path: m } }`).join(", ")}}\n`, "stages"],
      [`${header}stages:\n  a: { uses: load, with: { path: m, a: 1, b: 2, c: 3, d: 4, e: 5 } }\n`, "keys"],
      [`${header}stages:\n  a: { uses: load, with: { path: ${"[".repeat(9)}${"]".repeat(9)} } }\n`, "depth"],
      [`${header}stages:\n  s0: { uses: load, with: &w { path: m } }\n${Array.from({ length: 4 }, (_, i) => `  s${i + 1}: { uses: load, with: *w }`).join("\n")}\n`, "aliases"],
      [`${header}stages:\n  a: { uses: load, with: { path: m, x: [${Array(200).fill(1).join(", ")}] } }\n`, "values"],
      [stages(100), "bytes"]
    ]
    for (const [text, limit] of cases) {
      const problems = Yaml.check(text, builtinRegistry, [], limit === "bytes" ? { ...Limits.defaults, bytes: 4_000 } : low).problems
      expect(problems.map((p) => p.code), limit).toEqual(["LimitExceeded"])
      expect(problems[0]!.message, limit).toContain(`CRUCIBLE_PIPELINE_LIMITS=${limit}=`)
      expect(problems[0]!.position, limit).toBeDefined()
      expect(Yaml.check(text, builtinRegistry).problems.filter((p) => p.code === "LimitExceeded"), limit).toEqual([])
    }
    expect(Limits.fromSpec("stages=200000, bytes=64MB")).toEqual({ limits: { ...Limits.defaults, stages: 200_000, bytes: 64 * 1024 ** 2 } })
    expect(Limits.fromSpec("stages=lots")).toHaveProperty("error")
  })
})

describe("hostile pipeline files through `crucible validate`", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-fuzz-"))
  const write = (name: string, text: string) => {
    const file = path.join(dir, name)
    fs.writeFileSync(file, text)
    return file
  }
  const bombs: ReadonlyArray<readonly [string, () => string]> = [
    ["200k stages", () => `${header}stages:\n${Array.from({ length: 200_000 }, (_, i) => `  s${i}: { uses: load, with: { path: m${i}.safetensors } }\n`).join("")}`],
    ["1 MB of [", () => "[".repeat(1 << 20)],
    ["1000-deep nesting", () => `${header}stages:\n  a:\n${Array.from({ length: 1000 }, (_, i) => `${"  ".repeat(i + 2)}k:`).join("\n")}\n`],
    ["an alias to a missing anchor", () => `${header}stages:\n  a: { uses: load, with: *w }\n`],
    ["2 million values", () => `${header}stages:\n  a: { uses: load, with: { path: m, x: [${Array(2_000_000).fill(1).join(",")}] } }\n`],
    ["17 MB", () => `${header}description: "${"x".repeat(17 * 1024 * 1024)}"\nstages: {}\n`]
  ]
  for (const [name, text] of bombs) {
    it(`${name}: exit 2 with a LimitExceeded or YamlSyntax problem, no stack trace, within 10 s`, () => {
      const file = write(`${name.replace(/\W+/g, "-")}.yaml`, text())
      const started = performance.now()
      const r = crucible(["validate", file])
      expect(performance.now() - started).toBeLessThan(10_000)
      expect(r.code).toBe(2)
      expect(r.stderr).toMatch(/\[(LimitExceeded|YamlSyntax)\]/)
      expect(r.stderr).not.toContain("    at ")
    })
  }

  it("SIGTERM during the validation of a large pipeline exits 143, never 0", async () => {
    const file = write("large.yaml", `${header}stages:\n${Array.from({ length: 9_000 }, (_, i) => `  s${i}: { uses: load, with: { path: m${i}.safetensors } }\n`).join("")}`)
    const child = startCrucible(["validate", file])
    let stderr = ""
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()))
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    const sent = performance.now()
    child.kill("SIGTERM")
    const [code, signal] = await new Promise<readonly [number | null, string | null]>((resolve) => child.on("exit", (c, s) => resolve([c, s])))
    expect(performance.now() - sent).toBeLessThan(20_000)
    // 143 once the CLI handles signals; killed by the signal itself if it came before that.
    expect(code === 143 || signal === "SIGTERM", `exit ${code}, signal ${signal}`).toBe(true)
    expect(stderr).not.toContain("    at ")
  })
})
