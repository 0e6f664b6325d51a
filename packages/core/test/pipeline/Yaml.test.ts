import { describe, expect, it } from "vitest"
import { Effect, Exit, Schema } from "effect"
import type { PipelineInvalid } from "../../src/pipeline/PipelineError.ts"
import * as Port from "../../src/pipeline/Port.ts"
import * as Registry from "../../src/pipeline/Registry.ts"
import * as Stage from "../../src/pipeline/Stage.ts"
import * as Limits from "../../src/pipeline/Limits.ts"
import * as Yaml from "../../src/pipeline/Yaml.ts"
import { registry } from "./kinds.ts"

const problemsOf = (text: string) => {
  const exit = Effect.runSyncExit(Yaml.decode(text, registry, "p.yaml"))
  if (Exit.isSuccess(exit)) return []
  const error = (exit.cause as unknown as { reasons: Array<{ error: PipelineInvalid }> }).reasons[0]!.error
  return error.problems.map((p) => ({ code: p.code, stage: p.stage, line: p.position?.line, col: p.position?.col, message: p.message }))
}

const valid = `version: 1
name: average-two
stages:
  a: { uses: test/source, with: { path: a.safetensors } }
  b: { uses: test/source, with: { path: b.safetensors } }
  avg: { uses: test/average, with: { models: [a, b], weights: [0.3, 0.7] } }
  out: { uses: test/sink, with: { model: avg, path: out.safetensors } }
`

describe("pipeline YAML", () => {
  it("decodes a valid pipeline into resolved stages with edges from references", () => {
    const p = Effect.runSync(Yaml.decode(valid, registry, "p.yaml"))
    expect(p.stages.map((s) => [s.id, s.kind.kind, s.dependsOn])).toEqual([
      ["a", "test/source", []],
      ["b", "test/source", []],
      ["avg", "test/average", ["a", "b"]],
      ["out", "test/sink", ["avg"]]
    ])
    expect(p.stages[2]!.params).toEqual({ weights: [0.3, 0.7] })
    expect(p.stages[2]!.inputs).toEqual({ models: ["a", "b"], base: [] })
  })

  it("reports YAML syntax errors with their position", () => {
    const problems = problemsOf("version: 1\nname: x\nstages:\n  a: { uses: test/source, with: { path: [a }\n")
    expect(problems[0]).toMatchObject({ code: "YamlSyntax", line: 4 })
  })

  it("reports unknown top-level and stage keys at the key", () => {
    const problems = problemsOf(`version: 1
name: x
colour: red
stages:
  a:
    uses: test/source
    whith: { path: a }
`)
    // The top level's problem does not hide the stage's.
    expect(problems).toEqual([
      expect.objectContaining({ code: "UnknownKey", line: 3, col: 1, message: 'unknown key "colour"' }),
      expect.objectContaining({ code: "UnknownKey", stage: "a", line: 7, col: 5 })
    ])
    const stageProblems = problemsOf(`version: 1
name: x
stages:
  a:
    uses: test/source
    whith: { path: a }
`)
    expect(stageProblems).toEqual([expect.objectContaining({ code: "UnknownKey", stage: "a", line: 6, col: 5 })])
  })

  it("reports all problems of all stages at once, each with line:col", () => {
    const problems = problemsOf(`version: 1
name: many-problems
stages:
  a: { uses: test/source, with: { path: a.safetensors } }
  b: { uses: test/sorce, with: { path: b.safetensors } }
  avg:
    uses: test/average
    with:
      models: [a, c]
      weights: [0.5, "x"]
      normalise: true
  m: { uses: test/score, with: { model: a } }
  out: { uses: test/sink, with: { model: m, path: o } }
  out2: { uses: test/sink, with: { path: x } }
`)
    expect(problems.map((p) => [p.code, p.stage, p.line, p.col])).toEqual([
      ["UnknownStageKind", "b", 5, 14],
      ["DanglingReference", "avg", 9, 19],
      ["InvalidParam", "avg", 10, 22],
      ["UnknownParam", "avg", 11, 7],
      ["PortMismatch", "out", 13, 42],
      ["MissingInput", "out2", 14, 34]
    ])
    expect(problems[0]!.message).toContain('did you mean "test/source"?')
    expect(problems[1]!.message).toContain('refers to "c", but there is no such stage')
    expect(problems[3]!.message).toContain('unknown parameter "normalise"')
    expect(problems[3]!.message).toContain('did you mean "normalize"?')
    expect(problems[4]!.message).toBe('input "model" expects a model, but stage "m" (test/score) outputs metrics')
  })

  it("reports a missing required parameter at the stage's with:", () => {
    expect(problemsOf(`version: 1
name: x
stages:
  a: { uses: test/source, with: {} }
`)).toEqual([expect.objectContaining({ code: "MissingParam", stage: "a", line: 4, col: 33 })])
  })

  it("reports duplicate stage ids at the second occurrence", () => {
    const problems = problemsOf(`version: 1
name: x
stages:
  a: { uses: test/source, with: { path: a } }
  a: { uses: test/source, with: { path: b } }
`)
    expect(problems).toEqual([expect.objectContaining({ code: "DuplicateId", stage: "a", line: 5, col: 3 })])
  })

  it("names the stages of a cycle", () => {
    const problems = problemsOf(`version: 1
name: x
stages:
  s: { uses: test/source, with: { path: s } }
  a: { uses: test/average, with: { models: [s, b] } }
  b: { uses: test/average, with: { models: [a, s] } }
  m: { uses: test/score, with: { model: a } }
`)
    const cycles = problems.filter((p) => p.code === "Cycle")
    expect(cycles).toHaveLength(1)
    expect(cycles[0]!.message).toContain("a → b → a")
    expect(problems).toHaveLength(1)
    expect(cycles[0]).toMatchObject({ stage: "a", line: 5 })
  })

  it("rejects too few inputs and wrong reference types", () => {
    const problems = problemsOf(`version: 1
name: x
stages:
  a: { uses: test/source, with: { path: a } }
  avg: { uses: test/average, with: { models: [a] } }
  s: { uses: test/sink, with: { model: [a], path: p } }
`)
    expect(problems.map((p) => [p.code, p.line, p.col])).toEqual([["TooFewInputs", 5, 46], ["InvalidReference", 6, 40]])
  })

  it("rejects a wrong version and a bad stage id with positions", () => {
    const problems = problemsOf(`version: 2
name: x
stages:
  "bad id": { uses: test/source, with: { path: a } }
`)
    // A wrong version does not hide the stages' problems.
    expect(problems.map((p) => [p.code, p.line])).toEqual([["InvalidPipeline", 1], ["InvalidPipeline", 4]])
    const idProblems = problemsOf(`version: 1
name: x
stages:
  "bad id": { uses: test/source, with: { path: a } }
`)
    expect(idProblems.map((p) => [p.code, p.line, p.col])).toEqual([["InvalidPipeline", 4, 3]])
  })

  it("formats a problem as file:line:col with a code frame", () => {
    const exit = Effect.runSyncExit(Yaml.decode(valid.replace("test/sink", "test/snk"), registry, "p.yaml"))
    expect(Exit.isFailure(exit)).toBe(true)
    const message = Exit.isFailure(exit) ? String((exit.cause as unknown as { reasons: Array<{ error: Error }> }).reasons[0]!.error.message) : ""
    expect(message).toContain('p.yaml:7:16: [UnknownStageKind] stage "out": unknown stage kind "test/snk"')
    expect(message).toContain("> 7 |   out: { uses: test/snk, with: { model: avg, path: out.safetensors } }")
    expect(message).toContain("    |                ^")
  })

  it("reports a missing name, a dangling reference and an unknown kind together", () => {
    const problems = problemsOf(`version: 1
stages:
  a: { uses: test/source, with: { path: a } }
  avg: { uses: test/average, with: { models: [a, nope] } }
  z: { uses: test/zap, with: {} }
`)
    expect(problems.map((p) => [p.code, p.line, p.col])).toEqual([["InvalidPipeline", 1, 1], ["DanglingReference", 4, 50], ["UnknownStageKind", 5, 14]])
    expect(problems[0]!.message).toBe('missing required key "name"')
  })

  describe("a kind's own params check", () => {
    const Weighted = Stage.define({
      kind: "test/weighted",
      version: 1,
      description: "one weight per model",
      params: Schema.Struct({ weights: Schema.Array(Schema.Finite), note: Schema.optional(Schema.String) }),
      inputs: { models: Port.many(Port.ModelPort, { min: 1 }) },
      output: Port.ModelPort,
      check: {
        params: ({ params, inputs }) => [
          ...(params.weights.length === inputs.models.length ? [] : [{ path: ["weights"], message: `${params.weights.length} weights for ${inputs.models.length} models` }]),
          ...(params.note === "odd" ? [{ path: ["note"], message: "an odd note", severity: "warning" as const }] : [])
        ]
      },
      run: ({ inputs }) => Effect.succeed(inputs.models[0]!)
    })
    const withWeighted = Registry.extend(registry, [Weighted])
    const pipeline = (stage: string) => `version: 1
name: x
stages:
  a: { uses: test/source, with: { path: a } }
  b: { uses: test/source, with: { path: b } }
  w: ${stage}
  out: { uses: test/sink, with: { model: w, path: o } }
`

    it("reports its issues at their path inside with:, as InvalidParam by default", () => {
      const checked = Yaml.check(pipeline("{ uses: test/weighted, with: { models: [a, b], weights: [1, 2, 3] } }"), withWeighted)
      expect(checked.problems.map((p) => [p.code, p.stage, p.position?.line, p.position?.col, p.message])).toEqual([["InvalidParam", "w", 6, 62, "3 weights for 2 models"]])
      // The stages that passed, and only those whose inputs did, are kept for a preflight.
      expect(checked.pipeline?.stages.map((s) => s.id)).toEqual(["a", "b"])
    })

    it("warnings leave the pipeline valid", () => {
      const checked = Yaml.check(pipeline("{ uses: test/weighted, with: { models: [a, b], weights: [1, 2], note: odd } }"), withWeighted)
      expect(checked.problems.map((p) => [p.code, p.severity, p.position?.line])).toEqual([["InvalidParam", "warning", 6]])
      expect(checked.pipeline?.stages.map((s) => s.id)).toEqual(["a", "b", "w", "out"])
      expect(Exit.isSuccess(Effect.runSyncExit(Yaml.decode(pipeline("{ uses: test/weighted, with: { models: [a, b], weights: [1, 2], note: odd } }"), withWeighted)))).toBe(true)
    })

    it("does not run on params that failed to decode, and a check that throws is reported, not raised", () => {
      expect(problemsOf(pipeline("{ uses: test/average, with: { models: [a, b], weights: [1, x] } }")).map((p) => p.code)).toEqual(["InvalidParam"])
      const Throws = Stage.define({
        kind: "test/throws", version: 1, description: "a kind whose check has a bug", params: Weighted.params, inputs: Weighted.inputs, output: Port.ModelPort,
        check: { params: () => { throw new Error("boom") } },
        run: ({ inputs }) => Effect.succeed(inputs.models[0]!)
      })
      const checked = Yaml.check(pipeline("{ uses: test/throws, with: { models: [a, b], weights: [1, 2] } }"), Registry.extend(registry, [Throws]))
      expect(checked.problems.map((p) => [p.code, p.message])).toEqual([["KindModule", 'the check of kind "test/throws" threw (a bug in the kind): boom']])
    })
  })
})

describe("pipeline YAML under limits", () => {
  const stages = (n: number) => `version: 1\nname: x\nstages:\n${Array.from({ length: n }, (_, i) => `  s${i}: { uses: test/source, with: { path: m${i} } }`).join("\n")}\n`

  it("reports a key used twice in any mapping at its second occurrence, and a stage id used twice as DuplicateId", () => {
    const problems = problemsOf(`version: 1\nname: x\nstages:\n  a: { uses: test/source, with: { path: a, path: b } }\n  a: { uses: test/source, with: { path: c } }\n`)
    expect(problems).toEqual([
      expect.objectContaining({ code: "DuplicateKey", line: 4, col: 44 }),
      expect.objectContaining({ code: "DuplicateId", stage: "a", line: 5, col: 3 })
    ])
  })

  it("parses many stages in linear time: 20,000 stages with the limit raised, well under the seconds yaml's uniqueKeys took", () => {
    const started = performance.now()
    const parsed = Yaml.parse(stages(20_000), { ...Limits.defaults, stages: 20_000 })
    expect(parsed.ir?.stages).toHaveLength(20_000)
    expect(parsed.problems).toEqual([])
    expect(performance.now() - started).toBeLessThan(20_000)
  })

  it("stops nesting, stage count and aliases at their limits with a positioned LimitExceeded, and an alias to no anchor with a YamlSyntax", () => {
    const deep = `version: 1\nname: x\nstages:\n  a:\n${Array.from({ length: 1000 }, (_, i) => `${"  ".repeat(i + 2)}k:`).join("\n")}\n`
    expect(problemsOf(deep)).toEqual([expect.objectContaining({ code: "LimitExceeded", line: 67 })])
    expect(problemsOf(stages(10_001))).toEqual([expect.objectContaining({ code: "LimitExceeded", line: 3, col: 1, message: expect.stringContaining("stages=10001") })])
    expect(problemsOf(`version: 1\nname: x\nstages:\n  a: { uses: test/source, with: *w }\n`)).toEqual([expect.objectContaining({ code: "YamlSyntax", line: 4, col: 33 })])
    const reuse = `version: 1\nname: x\nstages:\n  s0: { uses: test/source, with: &w { path: m } }\n${Array.from({ length: 150 }, (_, i) => `  s${i + 1}: { uses: test/source, with: *w }`).join("\n")}\n`
    expect(problemsOf(reuse)).toEqual([])
  })
})
