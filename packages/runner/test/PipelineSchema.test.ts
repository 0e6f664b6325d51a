import { describe, expect, it } from "vitest"
import { Ir, Registry, Yaml } from "@crucible/core"
import { builtinRegistry } from "@crucible/strategies"
import { Ajv } from "ajv"
import { Ajv2020 } from "ajv/dist/2020.js"
import { Effect, Exit, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { parse, stringify } from "yaml"
import * as KindModules from "../src/KindModules.ts"
import * as PipelineSchema from "../src/PipelineSchema.ts"

const examples = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../examples")
const pipelines = fs.readdirSync(examples).map((d) => path.join(examples, d, "pipeline.yaml")).filter((f) => fs.existsSync(f))

// Strict: the schema must be valid in its draft without Ajv's leniencies (unknown keywords, loose tuples).
const compiler = (dialect: PipelineSchema.Dialect) => (registry: Registry.Registry) =>
  (dialect === "draft-07" ? new Ajv({ allErrors: true, strict: true }) : new Ajv2020({ allErrors: true, strict: true })).compile(PipelineSchema.make(registry, dialect))

/** The registry a pipeline file's stages use: the built-in kinds plus those of its `kinds:` modules. */
const registryOf = (file: string, doc: { readonly kinds?: ReadonlyArray<string> }) =>
  doc.kinds === undefined ? Promise.resolve(builtinRegistry) : Effect.runPromise(Effect.map(KindModules.load(doc.kinds, path.dirname(file)), (user) => Registry.extend(builtinRegistry, user.kinds.values())))

const quickstart = parse(fs.readFileSync(path.join(examples, "quickstart/pipeline.yaml"), "utf8")) as Record<string, any>
const rebasin = parse(fs.readFileSync(path.join(examples, "rebasin/pipeline.yaml"), "utf8")) as Record<string, any>

/** `doc` changed by `edit` (on a deep copy). */
const broken = (doc: Record<string, any>, edit: (d: Record<string, any>) => void) => {
  const copy = structuredClone(doc)
  edit(copy)
  return copy
}

const validatorRejects = (doc: unknown) => Exit.isFailure(Effect.runSyncExit(Yaml.decode(stringify(doc), builtinRegistry)))

describe.each(["draft-07", "draft-2020-12"] as const)("the pipeline JSON Schema, %s", (dialect) => {
  const compile = compiler(dialect)
  const builtin = compile(builtinRegistry)

  it.each(pipelines.map((f) => [path.relative(examples, f), f]))("accepts examples/%s", async (_, file) => {
    const doc = parse(fs.readFileSync(file, "utf8")) as { kinds?: ReadonlyArray<string> }
    const validate = doc.kinds === undefined ? builtin : compile(await registryOf(file, doc))
    expect(validate(doc) ? [] : validate.errors).toEqual([])
  })

  it("covers every example folder that has a pipeline.yaml", () => {
    expect(pipelines.map((f) => path.basename(path.dirname(f)))).toEqual(expect.arrayContaining(["quickstart", "rebasin", "distill", "soup", "progressive"]))
  })

  const cases: ReadonlyArray<readonly [string, Record<string, any>, string]> = [
    ["an unknown kind", broken(quickstart, (d) => (d.stages.avg.uses = "merge/lienar")), "/stages/avg/uses"],
    ["a param of the wrong type", broken(quickstart, (d) => (d.stages.avg.with.weights = "heavy")), "/stages/avg/with/weights"],
    ["an integer param given a fraction", broken(rebasin, (d) => (d.stages.a.with.epochs = 2.5)), "/stages/a/with/epochs"],
    ["a value outside a param's set", broken(quickstart, (d) => (d.stages.out.with.format = "onnx")), "/stages/out/with/format"],
    ["an unknown key in a stage", broken(quickstart, (d) => (d.stages.a.needz = ["b"])), "/stages/a"],
    ["an unknown param in with", broken(quickstart, (d) => (d.stages.a.with.pth = "x.safetensors")), "/stages/a/with"],
    ["a missing required param", broken(quickstart, (d) => delete d.stages.out.with.path), "/stages/out/with"],
    ["a missing required input", broken(quickstart, (d) => delete d.stages.out.with.model), "/stages/out/with"],
    ["a list input given one id", broken(quickstart, (d) => (d.stages.avg.with.models = "a")), "/stages/avg/with/models"],
    ["a one-id input given a list", broken(quickstart, (d) => (d.stages.out.with.model = ["avg"])), "/stages/out/with/model"],
    ["a missing name", broken(quickstart, (d) => delete d.name), ""],
    ["another version", broken(quickstart, (d) => (d.version = 2)), "/version"],
    ["an unknown top-level key", broken(quickstart, (d) => (d.stage = {})), ""],
    ["an invalid stage id", broken(quickstart, (d) => (d.stages["1st"] = d.stages.a)), "/stages"],
    ["a stage without uses", broken(quickstart, (d) => delete d.stages.a.uses), "/stages/a"],
    ["an optional param given null", broken(quickstart, (d) => (d.stages.a.with.key = null)), "/stages/a/with/key"]
  ]

  it.each(cases)("rejects %s, as crucible validate does", (_, doc, at) => {
    expect(builtin(doc)).toBe(false)
    expect(builtin.errors?.map((e) => e.instancePath)).toContain(at)
    // The rejection is real: the validator rejects the same file.
    expect(validatorRejects(doc)).toBe(true)
  })

  it("knows a user's kinds only when they are given", async () => {
    const file = path.join(examples, "typescript/pipeline.yaml")
    const doc = parse(fs.readFileSync(file, "utf8")) as { kinds: ReadonlyArray<string>; stages: Record<string, any> }
    expect(builtin(doc)).toBe(false)
    const withUser = compile(await registryOf(file, doc))
    expect(withUser(doc)).toBe(true)
    expect(withUser(broken(doc, (d) => (d.stages.half.with.factor = "half")))).toBe(false)
  })

  it("has the file format's keys: the top level's and a stage's", () => {
    const schema = PipelineSchema.make(builtinRegistry, dialect) as any
    expect(schema.$schema).toBe(dialect === "draft-07" ? "http://json-schema.org/draft-07/schema#" : "https://json-schema.org/draft/2020-12/schema")
    expect(Object.keys(schema.properties).sort()).toEqual(Object.keys(Ir.PipelineFile.fields).sort())
    expect(Object.keys(schema.properties.stages.additionalProperties.properties).sort()).toEqual(Object.keys(Ir.StageNode.fields).sort())
    expect(schema.required).toEqual(["version", "name", "stages"])
  })

  it("has the stage id pattern the IR checks", () => {
    const pattern = new RegExp(PipelineSchema.STAGE_ID_PATTERN)
    for (const id of ["a", "_x", "b_aligned", "save-2", "A9", "1st", "-x", "a.b", "a b", "", "é"]) {
      expect(pattern.test(id), id).toBe(Exit.isSuccess(Schema.decodeUnknownExit(Ir.StageId)(id)))
    }
  })

  it("shows the kinds' descriptions where editors look", () => {
    const schema = PipelineSchema.make(builtinRegistry, dialect) as any
    const ties = schema.properties.stages.additionalProperties.allOf.find((b: any) => b.if.properties.uses.const === "merge/ties")
    expect(ties.then.properties.uses.description).toMatch(/^merge\/ties: TIES/)
    expect(ties.then.properties.with.properties.density).toBeDefined()
    expect(ties.then.properties.with.properties.base).toMatchObject({ type: "string", pattern: PipelineSchema.STAGE_ID_PATTERN })
    expect(ties.then.properties.with.required).toEqual(["models", "base"])
  })
})
