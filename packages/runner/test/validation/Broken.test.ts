// Broken pipelines, each through `crucible validate --json` (the bundled CLI, as users run it): the
// codes it reports, where (line:col of the offending value), and its exit code — 2 while one problem
// is an error, 0 when all are warnings. The inputs are real safetensors files whose headers
// disagree in small, known ways; validation reads those headers and never tensor data.
import { beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { crucible } from "../e2e/cli.ts"
import { type Spec, writeFilled, writeModel } from "../e2e/models.ts"

const specs: ReadonlyArray<Spec> = [
  { name: "layers.0.self_attn.q.weight", shape: [4, 4] },
  { name: "layers.0.mlp.weight", shape: [4, 4] },
  { name: "layers.1.self_attn.q.weight", shape: [4, 4] },
  { name: "head.bias", shape: [4] }
]

// A user's kinds: one that declares its own checks, and a source whose tensors must never be read before the run.
const KINDS = `import { Model, Port, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"

export const Blend = Stage.define({
  kind: "user/blend",
  version: 1,
  description: "keeps one tensor of the first model; one weight per model",
  params: Schema.Struct({ tensor: Schema.String, weights: Schema.Array(Schema.Finite) }),
  inputs: { models: Port.many(Port.ModelPort, { min: 1 }) },
  output: Port.ModelPort,
  resources: { lazy: true },
  check: {
    params: ({ params, inputs }) =>
      params.weights.length === inputs.models.length ? [] : [{ path: ["weights"], message: "one weight per model: " + params.weights.length + " for " + inputs.models.length }],
    headers: ({ params, inputs }) =>
      inputs.models.flatMap((m, i) => (m.tensors.has(params.tensor) ? [] : [{ path: ["models", i], message: m.source + " has no tensor " + params.tensor }]))
  },
  run: ({ id, params, inputs }) => Effect.succeed(Model.make(id, [inputs.models[0].tensors.get(params.tensor)]))
})

export const Tripwire = Stage.define({
  kind: "user/tripwire",
  version: 1,
  description: "a model whose every read fails",
  params: Schema.Struct({ size: Schema.Int }),
  inputs: {},
  output: Port.ModelPort,
  resources: { lazy: true },
  run: ({ id, params }) =>
    Effect.succeed(Model.make(id, [{ name: "w", dtype: "F32", shape: [params.size, params.size], read: () => Effect.die(new Error("tensor data was read")) }]))
})
`

const HEAD = `version: 1
name: broken
stages:
  a: { uses: load, with: { path: a.safetensors } }
  b: { uses: load, with: { path: b.safetensors } }
  base: { uses: load, with: { path: base.safetensors } }
`

/** One broken pipeline: its text, and each problem expected as [code, line, col] (a fourth "warning" for warnings). */
interface Case {
  readonly name: string
  readonly yaml: string
  readonly problems: ReadonlyArray<readonly [string, number, number] | readonly [string, number, number, "warning"]>
  /** Text the messages must hold (a suggestion, the numbers). */
  readonly says?: ReadonlyArray<string>
  readonly exit?: 0 | 2
  readonly args?: ReadonlyArray<string>
}

const cases: ReadonlyArray<Case> = [
  {
    name: "a missing name, a dangling reference and an unknown kind are reported together",
    yaml: `version: 1
stages:
  a: { uses: load, with: { path: a.safetensors } }
  avg: { uses: merge/linear, with: { models: [a, nope] } }
  z: { uses: merge/zap, with: {} }
`,
    problems: [["InvalidPipeline", 1, 1], ["DanglingReference", 4, 50], ["UnknownStageKind", 5, 14]],
    says: ['missing required key "name"', 'refers to "nope"', 'unknown stage kind "merge/zap"']
  },
  {
    name: "a load of a file that does not exist",
    yaml: `${HEAD}  gone: { uses: load, with: { path: nowhere.safetensors } }\n`,
    problems: [["InputUnreadable", 7, 37]],
    says: ["nowhere.safetensors: cannot open"]
  },
  {
    name: "a checkpoint whose data section is shorter than its header says (told from the header and the file size)",
    yaml: `${HEAD}  cut: { uses: load, with: { path: truncated.safetensors } }\n`,
    problems: [["InputUnreadable", 7, 36]],
    says: ["the file is truncated?"]
  },
  {
    name: "weights: 3 values for 2 models",
    yaml: `${HEAD}  avg: { uses: merge/linear, with: { models: [a, b], weights: [1, 2, 3] } }\n`,
    problems: [["InvalidParam", 7, 63]],
    says: ["weights has 3 values for 2 models"]
  },
  {
    name: "density: 1.5",
    yaml: `${HEAD}  m: { uses: merge/ties, with: { base: base, models: [a, b], density: 1.5 } }\n`,
    problems: [["InvalidParam", 7, 71]],
    says: ['parameter "density": Expected a value between 0 and 1']
  },
  {
    name: "t: 2 on slerp",
    yaml: `${HEAD}  m: { uses: merge/slerp, with: { models: [a, b], t: 2 } }\n`,
    problems: [["InvalidParam", 7, 54]],
    says: ['parameter "t": Expected a value between 0 and 1']
  },
  {
    name: "a per-model density list of the wrong length",
    yaml: `${HEAD}  m: { uses: merge/ties, with: { base: base, models: [a, b], density: [0.5, 0.5, 0.5] } }\n`,
    problems: [["InvalidParam", 7, 71]],
    says: ['parameter "density": the per-model list has 3 values for 2 models']
  },
  {
    name: "every wrong per-model list of a merge at once",
    yaml: `${HEAD}  m:\n    uses: merge/ties\n    with: { base: base, models: [a, b], weights: [1, 1, 1], density: [0.5] }\n`,
    problems: [["InvalidParam", 9, 50], ["InvalidParam", 9, 70]],
    says: ['"weights": the per-model list has 3 values', '"density": the per-model list has 1 values']
  },
  {
    name: "slerp with its base also among its models",
    yaml: `${HEAD}  m: { uses: merge/slerp, with: { base: a, models: [a, b], t: 0.5 } }\n`,
    problems: [["InvalidParam", 7, 41]],
    says: ['"a" is both the base and models[0]', "mergekit's slerp base_model is the t = 0 endpoint"]
  },
  {
    name: "a shape that differs between two merge inputs, at the input that differs",
    yaml: `${HEAD}  wide: { uses: load, with: { path: wide.safetensors } }\n  m: { uses: merge/ties, with: { base: base, models: [a, wide], density: 0.5 } }\n`,
    problems: [["HeaderMismatch", 8, 58]],
    says: ['"head.bias" has shape 4 in', "but 5 in", "wide.safetensors"]
  },
  {
    name: "a dtype that differs between two merge inputs",
    yaml: `${HEAD}  half: { uses: load, with: { path: half.safetensors } }\n  m: { uses: merge/linear, with: { models: [a, half] } }\n`,
    problems: [["HeaderMismatch", 8, 48]],
    says: ['"layers.0.mlp.weight" is F32 in model 1 but F16 in model 2']
  },
  {
    name: "a tensor missing in one merge input",
    yaml: `${HEAD}  short: { uses: load, with: { path: short.safetensors } }\n  m: { uses: merge/task-arithmetic, with: { base: base, models: [a, short] } }\n`,
    problems: [["HeaderMismatch", 8, 69]],
    says: ['"head.bias" is missing in', "on_missing: skip or base"]
  },
  {
    name: "a filter that matches no tensor is a warning with the nearest names, and the pipeline stays valid",
    yaml: `${HEAD}  m:\n    uses: merge/ties\n    with:\n      base: base\n      models: [a, b]\n      density:\n        - { filter: "*self_atn*", value: 0.3 }\n        - { filter: "*", value: 0.5 }\n`,
    problems: [["UnmatchedFilter", 13, 21, "warning"]],
    says: ['filter "*self_atn*" of "density" matches none of the 4 tensors; nearest: layers.0.self_attn.q.weight, layers.1.self_attn.q.weight'],
    exit: 0
  },
  {
    name: "tensors no filter matches, with unmatched: error, listed at the parameter",
    yaml: `${HEAD}  m: { uses: merge/ties, with: { base: base, models: [a, b], density: [{ filter: "layers.*", value: 0.5 }], unmatched: error } }\n`,
    problems: [["HeaderMismatch", 7, 71]],
    says: ['1 tensor match no filter of "density" (unmatched: error): "head.bias"']
  },
  {
    name: "a filter regex that backtracks catastrophically is refused at the filter, saying how to rewrite it",
    yaml: `${HEAD}  m: { uses: merge/ties, with: { base: base, models: [a, b], density: [{ filter: "/(a+)+$/", value: 0.3 }, { filter: "*", value: 0.5 }] } }\n`,
    problems: [["InvalidParam", 7, 82]],
    says: ['regex /(a+)+$/ is refused: "(a+)+" repeats "a+"', '"(a+)+" → "a+"']
  },
  {
    name: "a method's own per-tensor check, from the headers (DELLA's density ± epsilon)",
    yaml: `${HEAD}  m: { uses: merge/della, with: { base: base, models: [a, b], density: 0.5, epsilon: 0.6 } }\n`,
    problems: [["InvalidParam", 7, 86]],
    says: ["density ± epsilon inside (0, 1)", "(and 3 more tensors)"]
  },
  {
    name: "the problems of the file, of params and of headers are all reported at once",
    yaml: `version: 1
stages:
  a: { uses: load, with: { path: a.safetensors } }
  wide: { uses: load, with: { path: wide.safetensors } }
  gone: { uses: load, with: { path: nowhere.safetensors } }
  m: { uses: merge/ties, with: { base: a, models: [a, wide], density: 1.5 } }
  n: { uses: merge/linear, with: { models: [a, wide] } }
`,
    problems: [["InvalidPipeline", 1, 1], ["InputUnreadable", 5, 37], ["InvalidParam", 6, 71], ["HeaderMismatch", 7, 48]]
  },
  {
    name: "a user's kind is checked by its own declared checks (params and headers)",
    yaml: `${HEAD}  w: { uses: user/blend, with: { models: [a, b], tensor: head.bias, weights: [1] } }\n  x: { uses: user/blend, with: { models: [a, b], tensor: head.weight, weights: [1, 1] } }\n`,
    args: ["--kinds", "kinds.ts"],
    problems: [["InvalidParam", 7, 78], ["HeaderMismatch", 8, 43], ["HeaderMismatch", 8, 46]],
    says: ["one weight per model: 1 for 2", "a.safetensors has no tensor head.weight"]
  },
  {
    name: "stages after training, and stages with needs:, cannot be checked before they run: they are skipped quietly",
    yaml: `${HEAD}  t: { uses: train, with: { arch: { type: mlp, layers: [4, 4] }, data: iris, epochs: 1 } }
  m: { uses: merge/linear, with: { models: [t, a] } }
  out: { uses: save, with: { model: a, path: out/a.safetensors } }
  again: { uses: load, with: { path: out/a.safetensors }, needs: [out] }
`,
    problems: [],
    exit: 0
  }
]

let dir = ""

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-broken-"))
  await writeModel(path.join(dir, "a.safetensors"), specs, 1)
  await writeModel(path.join(dir, "b.safetensors"), specs, 2)
  await writeModel(path.join(dir, "base.safetensors"), specs, 3)
  await writeModel(path.join(dir, "wide.safetensors"), specs.map((s) => (s.name === "head.bias" ? { ...s, shape: [5] } : s)), 4)
  await writeModel(path.join(dir, "half.safetensors"), specs.map((s) => (s.name === "layers.0.mlp.weight" ? { ...s, dtype: "F16" as const } : s)), 5)
  await writeModel(path.join(dir, "short.safetensors"), specs.filter((s) => s.name !== "head.bias"), 6)
  await writeModel(path.join(dir, "truncated.safetensors"), specs, 7)
  fs.truncateSync(path.join(dir, "truncated.safetensors"), fs.statSync(path.join(dir, "truncated.safetensors")).size - 8)
  fs.writeFileSync(path.join(dir, "kinds.ts"), KINDS)
})

interface Reported {
  readonly code: string
  readonly message: string
  readonly severity?: string
  readonly position?: { readonly line: number; readonly col: number }
  readonly frame?: string
}

describe("crucible validate: broken pipelines", () => {
  it.each(cases.map((c) => [c.name, c] as const))("%s", (_, c) => {
    const file = path.join(dir, `${c.name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60)}.yaml`)
    fs.writeFileSync(file, c.yaml)
    const r = crucible(["validate", file, "--json", ...(c.args ?? [])], { cwd: dir })
    expect(r.code, r.stdout + r.stderr).toBe(c.exit ?? 2)
    const report = JSON.parse(r.stdout) as { ok: boolean; problems?: Array<Reported>; warnings?: Array<Reported> }
    const problems = (report.ok ? report.warnings : report.problems) ?? []
    expect(problems.map((p) => [p.code, p.position?.line, p.position?.col, ...(p.severity === "warning" ? ["warning"] : [])])).toEqual(c.problems)
    // Every problem has a position and a code frame.
    for (const p of problems) expect(p.frame).toContain(">")
    const messages = problems.map((p) => p.message).join("\n")
    for (const text of c.says ?? []) expect(messages).toContain(text)
  })

  it("prints file:line:col, the code frame, and warnings apart from errors", () => {
    const file = path.join(dir, "text.yaml")
    const warned = `${HEAD}  m:\n    uses: merge/ties\n    with: { base: base, models: [a, b], density: [{ filter: "*self_atn*", value: 0.3 }, { filter: "*", value: 0.5 }] }\n`
    fs.writeFileSync(file, `${warned}  n: { uses: merge/ties, with: { base: base, models: [a, b], density: [{ filter: "*", value: 1.5 }] } }\n`)
    const r = crucible(["validate", file])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain("2 problems (1 error, 1 warning)")
    expect(r.stderr).toContain(`${file}:9:61: warning [UnmatchedFilter] stage "m": filter "*self_atn*"`)
    // A value out of range inside a filter rule is reported at the value, alone (not as every rule form it is not).
    expect(r.stderr).toContain(`${file}:10:94: [InvalidParam] stage "n": parameter "density.0.value": Expected a value between 0 and 1\n`)
    expect(r.stderr).toContain("> 10 |")
    fs.writeFileSync(file, warned)
    const ok = crucible(["validate", file])
    expect(ok.code).toBe(0)
    expect(ok.stderr).toContain(`${file}:9:61: warning [UnmatchedFilter] stage "m": filter "*self_atn*"`)
    expect(ok.stdout).toBe(`${file}: valid (4 stages, 1 warning)\n`)
  })
})

describe("validation reads headers, never tensor data", () => {
  it("a checkpoint full of NaN validates, and its merge fails when run", async () => {
    const nanDir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-nan-"))
    await writeFilled(path.join(nanDir, "nan.safetensors"), specs, Number.NaN)
    await writeModel(path.join(nanDir, "a.safetensors"), specs, 1)
    fs.writeFileSync(path.join(nanDir, "p.yaml"), `version: 1
name: nan
stages:
  a: { uses: load, with: { path: a.safetensors } }
  nan: { uses: load, with: { path: nan.safetensors } }
  m: { uses: merge/linear, with: { models: [a, nan] } }
  out: { uses: save, with: { model: m, path: out.safetensors } }
`)
    expect(crucible(["validate", path.join(nanDir, "p.yaml")]).code).toBe(0)
    const r = crucible(["run", path.join(nanDir, "p.yaml"), "--runs-dir", path.join(nanDir, "runs")])
    expect(r.code).toBe(1)
    expect(r.stdout).toContain("NonFiniteTensor")
  })

  it("a model whose every tensor read fails validates through a merge and a save, and fails only when run", () => {
    const wired = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-tripwire-"))
    fs.writeFileSync(path.join(wired, "kinds.ts"), KINDS)
    fs.writeFileSync(path.join(wired, "p.yaml"), `version: 1
name: tripwire
kinds: [./kinds.ts]
stages:
  base: { uses: user/tripwire, with: { size: 4 } }
  x: { uses: user/tripwire, with: { size: 4 } }
  y: { uses: user/tripwire, with: { size: 4 } }
  m: { uses: merge/ties, with: { base: base, models: [x, y], density: 0.5 } }
  avg: { uses: merge/linear, with: { models: [m, x] } }
  out: { uses: save, with: { model: avg, path: out.safetensors } }
`)
    const v = crucible(["validate", path.join(wired, "p.yaml")])
    expect(v.stderr).toBe("")
    expect(v.code).toBe(0)
    const r = crucible(["run", path.join(wired, "p.yaml"), "--runs-dir", path.join(wired, "runs")])
    expect(r.code).toBe(1)
    expect(r.stdout).toContain("tensor data was read")
  })
})
