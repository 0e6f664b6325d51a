// The doors into a run besides a YAML file: a TypeScript pipeline through the CLI (the bundled
// command, as users run it), a user's kinds named by `kinds:` or `--kinds`, and the programmatic
// API (`Runner.run` / `runPromise` with a Builder or an IR). Each writes the run directory a YAML
// run writes, trace included.
import { Builder } from "@crucible/core"
import { Linear, Load, Save } from "@crucible/strategies"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { KindModuleError } from "../../src/KindModules.ts"
import * as Runner from "../../src/Runner.ts"
import { spansOf } from "../support/OtlpDecode.ts"
import * as OtlpReceiver from "../support/OtlpReceiver.ts"
import { crucible, crucibleAsync } from "./cli.ts"
import { readModel, writeModel } from "./models.ts"

const fresh = (name: string) => fs.mkdtempSync(path.join(os.tmpdir(), `crucible-${name}-`))

// A kind of the user's, in a module of its own, importing Crucible and Effect as users do: the
// one examples/typescript documents (user/scale).
const SCALE_KIND = fs.readFileSync(path.resolve(import.meta.dirname, "../../../../examples/typescript/kinds.ts"), "utf8")

/** A folder with two models a and b, the user's kind module, and `files` written into it. */
const workspace = async (files: Record<string, string>) => {
  const dir = fresh("doors")
  const a = await writeModel(path.join(dir, "a.safetensors"), [{ name: "w", shape: [4, 3] }, { name: "b", shape: [4] }], 1)
  const b = await writeModel(path.join(dir, "b.safetensors"), [{ name: "w", shape: [4, 3] }, { name: "b", shape: [4] }], 2)
  fs.writeFileSync(path.join(dir, "kinds.ts"), SCALE_KIND)
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text)
  return { dir, a, b }
}

const TS_PIPELINE = `import { Builder } from "@crucible/core"
import { Linear, Load, Save } from "@crucible/strategies"
import { Scale } from "./kinds.ts"

const p = Builder.make("doors")
const a = p.stage("a", Load, { path: "a.safetensors" })
const b = p.stage("b", Load, { path: "b.safetensors" })
const avg = p.stage("avg", Linear, { models: [a, b], weights: [1, 3] })
const tripled = p.stage("tripled", Scale, { model: avg, factor: 3 })
p.stage("out", Save, { model: tripled, path: "out.safetensors" })
export default p
`

const YAML_PIPELINE = (kinds: string) => `version: 1
name: doors
${kinds}stages:
  a: { uses: load, with: { path: a.safetensors } }
  b: { uses: load, with: { path: b.safetensors } }
  avg: { uses: merge/linear, with: { models: [a, b], weights: [1, 3] } }
  tripled: { uses: user/scale, with: { model: avg, factor: 3 } }
  out: { uses: save, with: { model: tripled, path: out.safetensors } }
`

const manifestOf = (runDir: string) => JSON.parse(fs.readFileSync(path.join(runDir, "manifest.json"), "utf8"))

/** 3 · (a + 3b) / 4 in float64. */
const expected = (a: ReadonlyMap<string, Float64Array>, b: ReadonlyMap<string, Float64Array>, name: string) =>
  Array.from(a.get(name)!, (x, i) => ((x + b.get(name)![i]! * 3) / 4) * 3)

/** Within float32 rounding of two stages (each rounds once) of the float64 reference. */
const expectClose = (actual: ArrayLike<number>, reference: ReadonlyArray<number>) => {
  expect(actual.length).toBe(reference.length)
  for (let i = 0; i < reference.length; i++) expect(Math.abs(actual[i]! - reference[i]!)).toBeLessThanOrEqual(3e-7 * Math.max(1, Math.abs(reference[i]!)))
}

/** `line:col` (1-based) of the quote before stage id \`id\` in \`p.stage("id"\`. */
const stageAt = (source: string, id: string) => {
  const lines = source.split("\n")
  const line = lines.findIndex((l) => l.includes(`p.stage("${id}"`))
  return `${line + 1}:${lines[line]!.indexOf(`"${id}"`) + 1}`
}

describe("a TypeScript pipeline through the CLI", () => {
  const otlp = OtlpReceiver.eachTest()

  it("validates, plans and runs with a user kind; trace, manifest, report and OTLP as for YAML; same IR, keys and bytes as the YAML", async () => {
    const { dir, a, b } = await workspace({ "pipeline.ts": TS_PIPELINE, "pipeline.yaml": YAML_PIPELINE("kinds: [./kinds.ts]\n") })
    const pipeline = path.join(dir, "pipeline.ts")

    const validated = crucible(["validate", pipeline])
    expect(validated.stderr).toBe("")
    expect(validated.stdout).toContain("valid (5 stages)")
    const planned = crucible(["plan", pipeline, "--json"])
    expect(planned.code).toBe(0)
    const plan = JSON.parse(planned.stdout)
    expect(plan.stages.map((s: { id: string; kind: string }) => `${s.id}:${s.kind}`)).toEqual(["a:load", "b:load", "avg:merge/linear", "tripled:user/scale", "out:save"])

    const runs = path.join(dir, "runs")
    const env = { OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_EXPORTER_OTLP_ENDPOINT: otlp.receiver.httpUrl }
    const ran = await crucibleAsync(["run", pipeline, "--runs-dir", runs, "--run-id", "ts", "--json"], { env })
    expect(ran.stderr).toBe("")
    expect(ran.code).toBe(0)
    // Progress events for every stage, the user's included.
    const events = ran.stdout.trim().split("\n").map((line) => JSON.parse(line))
    expect(events.filter((e) => e.type === "stage-finished").map((e) => `${e.stage}:${e.status}`)).toEqual(
      expect.arrayContaining(["a:succeeded", "b:succeeded", "avg:succeeded", "tripled:succeeded", "out:succeeded"])
    )
    const out = await readModel(path.join(dir, "out.safetensors"))
    for (const name of ["w", "b"]) expectClose(out.get(name)!.values, expected(a, b, name))
    const tsBytes = fs.readFileSync(path.join(dir, "out.safetensors"))

    const runDir = path.join(runs, "ts")
    for (const file of ["manifest.json", "trace.json", "events.jsonl", "log.jsonl", "report.html"]) expect(fs.existsSync(path.join(runDir, file)), file).toBe(true)
    const manifest = manifestOf(runDir)
    expect(manifest.status).toBe("succeeded")
    expect(manifest.pipeline.file).toBe(pipeline)
    expect(manifest.pipeline.inputPorts["user/scale"]).toEqual(["model"])
    const traced = spansOf(JSON.parse(fs.readFileSync(path.join(runDir, "trace.json"), "utf8")), "file")
    // The stage's own span (its tensors' spans, children of it, carry its id too).
    const userSpan = traced.find((s) => s.name === "stage tripled")
    expect(traced.filter((s) => s.name.startsWith("tensor ") && s.parentSpanId === userSpan?.spanId).map((s) => s.name).sort()).toEqual(["tensor b", "tensor w"])
    expect(userSpan?.attributes["crucible.stage.kind"]).toBe("user/scale")
    expect(userSpan?.attributes["crucible.stage.source"]).toBe(`${pipeline}:${stageAt(TS_PIPELINE, "tripled")}`)
    await otlp.receiver.waitFor((r) => r.spans.some((s) => s.attributes["crucible.stage.id"] === "tripled"))
    // The report draws the user stage's edge from the manifest.
    expect(fs.readFileSync(path.join(runDir, "report.html"), "utf8")).toContain("user/scale")

    fs.rmSync(path.join(dir, "out.safetensors"))
    const yamlRun = crucible(["run", path.join(dir, "pipeline.yaml"), "--runs-dir", runs, "--run-id", "yaml", "--quiet"])
    expect(yamlRun.stderr).toBe("")
    expect(yamlRun.code).toBe(0)
    expect(fs.readFileSync(path.join(dir, "out.safetensors")).equals(tsBytes)).toBe(true)
    const yamlManifest = manifestOf(path.join(runs, "yaml"))
    expect(yamlManifest.pipeline.ir.stages).toEqual(manifest.pipeline.ir.stages)
    expect(yamlManifest.stages.map((s: { key: string }) => s.key)).toEqual(manifest.stages.map((s: { key: string }) => s.key))
  })

  it("points at the stage's line in the .ts file when a param is wrong, and explains a module without a pipeline", async () => {
    const { dir } = await workspace({
      "bad.ts": TS_PIPELINE.replace("weights: [1, 3]", "weights: [1, 3] as never, normalize: \"yes\" as never"),
      "empty.ts": "export const x = 1\n",
      "throws.ts": "throw new Error(\"no GPU here\")\n"
    })
    const bad = crucible(["validate", path.join(dir, "bad.ts")])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain(`${path.join(dir, "bad.ts")}:${stageAt(TS_PIPELINE, "avg")}: [InvalidParam] stage "avg"`)
    expect(bad.stderr).toContain("> 8 | const avg = p.stage(\"avg\"")
    const empty = crucible(["run", path.join(dir, "empty.ts"), "--runs-dir", path.join(dir, "runs")])
    expect(empty.code).toBe(2)
    expect(empty.stderr).toContain("its default export must be a pipeline")
    const throws = crucible(["validate", path.join(dir, "throws.ts")])
    expect(throws.code).toBe(2)
    expect(throws.stderr).toContain("importing it failed: Error: no GPU here")
  })
})

describe("a user's kinds from YAML and the CLI", () => {
  it("loads kinds: modules relative to the pipeline, and --kinds modules", async () => {
    const { dir, a, b } = await workspace({ "with-kinds.yaml": YAML_PIPELINE("kinds: [./kinds.ts]\n"), "plain.yaml": YAML_PIPELINE("") })
    const other = fresh("elsewhere")
    // kinds: resolve against the pipeline's folder, whatever the working directory.
    const run = crucible(["run", path.join(dir, "with-kinds.yaml"), "--runs-dir", path.join(dir, "runs"), "--quiet"], { cwd: other })
    expect(run.stderr).toBe("")
    expect(run.code).toBe(0)
    expectClose((await readModel(path.join(dir, "out.safetensors"))).get("w")!.values, expected(a, b, "w"))

    const unknown = crucible(["validate", path.join(dir, "plain.yaml")])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain("[UnknownStageKind]")
    const withFlag = crucible(["validate", path.join(dir, "plain.yaml"), "--kinds", path.join(dir, "kinds.ts")])
    expect(withFlag.stderr).toBe("")
    expect(withFlag.code).toBe(0)
    const planned = crucible(["plan", "plain.yaml", "--kinds", "kinds.ts", "--json"], { cwd: dir })
    expect(planned.code).toBe(0)
    expect(JSON.parse(planned.stdout).stages.find((s: { id: string }) => s.id === "tripled").kind).toBe("user/scale")
  })

  it("reports a missing module, a module that throws, one without kinds and a name clash at the kinds: entry, with every other problem", async () => {
    const { dir } = await workspace({
      "throws.ts": "throw new Error(\"boom at import\")\n",
      "nokinds.ts": "export const answer = 42\n",
      "clash.ts": SCALE_KIND.replace("\"user/scale\"", "\"merge/linear\""),
      "p.yaml": `version: 1
name: broken
kinds:
  - ./missing.ts
  - ./throws.ts
  - ./nokinds.ts
  - ./clash.ts
  - ./kinds.ts
stages:
  a: { uses: load, with: { path: a.safetensors } }
  t: { uses: user/scale, with: { model: a, factor: "x" } }
`
    })
    const r = crucible(["validate", path.join(dir, "p.yaml"), "--json"])
    expect(r.code).toBe(2)
    const problems = JSON.parse(r.stdout).problems as Array<{ code: string; message: string; position?: { line: number; col: number } }>
    expect(problems.map((p) => [p.code, p.position?.line])).toEqual([
      ["KindModule", 4], ["KindModule", 5], ["KindModule", 6], ["KindClash", 7], ["InvalidParam", 11]
    ])
    expect(problems[0]!.message).toContain("no such file")
    expect(problems[1]!.message).toContain("boom at import")
    expect(problems[2]!.message).toContain("exports no stage kind")
    expect(problems[3]!.message).toContain("\"merge/linear\", which is a built-in kind")
    // The same module given twice is one kind; a --kinds module that clashes fails by itself.
    const clash = crucible(["validate", path.join(dir, "p.yaml"), "--kinds", path.join(dir, "clash.ts")])
    expect(clash.code).toBe(2)
    expect(clash.stderr).toContain("kinds module")
    expect(clash.stderr).toContain("built-in kind")
  })
})

describe("the programmatic API", () => {
  it("runs a Builder and an IR, writing the run directory with its trace; runPromise; a load error is typed", async () => {
    const { dir, a, b } = await workspace({})
    const p = Builder.make("api")
    const ma = p.stage("a", Load, { path: "a.safetensors" })
    const mb = p.stage("b", Load, { path: "b.safetensors" })
    const avg = p.stage("avg", Linear, { models: [ma, mb], weights: [1, 3] })
    p.stage("out", Save, { model: avg, path: "api.safetensors" })
    const events: Array<string> = []
    const result = await Runner.runPromise(p, { baseDir: dir, runsDir: path.join(dir, "runs"), runId: "api", onEvent: (e) => events.push(e.type) })
    expect(result.status).toBe("succeeded")
    expect(events[0]).toBe("run-started")
    expect(events.at(-1)).toBe("run-finished")
    for (const file of ["manifest.json", "trace.json", "report.html"]) expect(fs.existsSync(path.join(result.runDir, file)), file).toBe(true)
    const out = await readModel(path.join(dir, "api.safetensors"))
    expectClose(out.get("w")!.values, Array.from(a.get("w")!, (x, i) => (x + b.get("w")![i]! * 3) / 4))

    const fromIr = await Effect.runPromise(Runner.run({ ...p.build(), name: "api-ir" }, { baseDir: dir, runsDir: path.join(dir, "runs"), telemetry: "none" }))
    expect(fromIr.status).toBe("succeeded")
    expect(fs.existsSync(path.join(fromIr.runDir, "trace.json"))).toBe(false)

    const failed = await Effect.runPromise(Effect.flip(Runner.load(path.join(dir, "p.yaml"), { kindModules: [path.join(dir, "nowhere.ts")] })))
    expect(failed).toBeInstanceOf(KindModuleError)
    expect((failed as KindModuleError).reason).toBe("NotFound")
  })
})
