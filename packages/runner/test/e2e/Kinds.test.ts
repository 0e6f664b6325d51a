import { describe, expect, it } from "vitest"
import { Builtin } from "@crucible/strategies"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type { KindInfo } from "../../src/KindCatalog.ts"
import { crucible } from "./cli.ts"

const examples = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../../examples")
const userKinds = path.join(examples, "typescript/kinds.ts")

describe("crucible kinds and crucible schema", () => {
  it("kinds --json prints every built-in kind as JSON", () => {
    const r = crucible(["kinds", "--json"])
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    const catalog = JSON.parse(r.stdout) as ReadonlyArray<KindInfo>
    expect(catalog.map((k) => k.kind)).toEqual(Object.keys(Builtin))
    expect(catalog.find((k) => k.kind === "train")?.params.find((p) => p.name === "batch_size")).toMatchObject({ type: "integer", default: 100 })
  })

  it("kinds prints a readable list", () => {
    const r = crucible(["kinds"])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain("merge/ties (v1) — ")
    expect(r.stdout).toContain("    epochs       integer (> 0) — passes over the training split")
  })

  it("schema prints a JSON Schema (draft-07, or 2020-12 with --draft) that knows every kind", () => {
    type Printed = { $schema: string; properties: { stages: { additionalProperties: { properties: { uses: { enum: ReadonlyArray<string> } } } } } }
    const r = crucible(["schema"])
    expect(r.code).toBe(0)
    const schema = JSON.parse(r.stdout) as Printed
    expect(schema.$schema).toBe("http://json-schema.org/draft-07/schema#")
    expect(schema.properties.stages.additionalProperties.properties.uses.enum).toEqual(Object.keys(Builtin))
    const modern = crucible(["schema", "--draft", "2020-12"])
    expect(modern.code).toBe(0)
    expect((JSON.parse(modern.stdout) as Printed).$schema).toBe("https://json-schema.org/draft/2020-12/schema")
  })

  it("--kinds adds a module's kinds to both", () => {
    const kinds = crucible(["kinds", "--json", "--kinds", userKinds])
    expect(kinds.code).toBe(0)
    const user = (JSON.parse(kinds.stdout) as ReadonlyArray<KindInfo>).at(-1)
    expect(user).toMatchObject({ kind: "user/scale", params: [{ name: "factor", type: "number", required: true }], output: { port: "model" } })
    const schema = crucible(["schema", "--kinds", userKinds])
    expect(schema.code).toBe(0)
    expect(schema.stdout).toContain('"user/scale"')
  })

  it("a --kinds module that does not exist is invalid input (exit 2), with its path", () => {
    const r = crucible(["kinds", "--kinds", "no-such-kinds.ts"])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain("no-such-kinds.ts")
    expect(crucible(["schema", "--kinds", "no-such-kinds.ts"]).code).toBe(2)
  })
})
