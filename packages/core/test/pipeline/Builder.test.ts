import { describe, expect, it } from "vitest"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Builder from "../../src/pipeline/Builder.ts"
import * as Validate from "../../src/pipeline/Validate.ts"
import * as Yaml from "../../src/pipeline/Yaml.ts"
import { Average, registry, Sink, Source } from "./kinds.ts"

const here = path.dirname(fileURLToPath(import.meta.url))

const yaml = `version: 1
name: average-two
stages:
  a: { uses: test/source, with: { path: a.safetensors } }
  b: { uses: test/source, with: { path: b.safetensors } }
  avg: { uses: test/average, with: { models: [a, b], weights: [0.3, 0.7] } }
  out: { uses: test/sink, with: { model: avg, path: out.safetensors }, needs: [b] }
`

describe("pipeline builder", () => {
  it("produces the same IR as the YAML file", () => {
    const p = Builder.make("average-two")
    const a = p.stage("a", Source, { path: "a.safetensors" })
    const b = p.stage("b", Source, { path: "b.safetensors" })
    const avg = p.stage("avg", Average, { models: [a, b], weights: [0.3, 0.7] })
    p.stage("out", Sink, { model: avg, path: "out.safetensors" }, { needs: [b] })
    const fromCode = p.build()
    const fromYaml = Yaml.parse(yaml).ir
    expect(fromCode).toEqual(fromYaml)
    expect(Validate.validate(fromCode, registry)._tag).toBe("Valid")
  })

  it("rejects a reused stage id", () => {
    const p = Builder.make("x")
    p.stage("a", Source, { path: "a" })
    expect(() => p.stage("a", Source, { path: "b" })).toThrow('stage id "a" is used twice')
  })

  it("does not compile a reference of the wrong port type, a wrong param type, or a missing param", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "builder-tsc-"))
    const tsconfig = path.join(dir, "tsconfig.json")
    fs.writeFileSync(tsconfig, JSON.stringify({
      extends: path.resolve(here, "../../../../tsconfig.base.json"),
      compilerOptions: { noEmit: true, types: ["node"], typeRoots: [path.resolve(here, "../../../../node_modules/@types")] },
      files: [path.join(here, "fixtures/builder-misuse.ts")]
    }))
    let output = ""
    try {
      execFileSync(process.execPath, [path.resolve(here, "../../../../node_modules/typescript/bin/tsc"), "-p", tsconfig], { encoding: "utf8" })
    } catch (e) {
      output = String((e as { stdout: string }).stdout)
    }
    const errorLines = [...output.matchAll(/builder-misuse\.ts\((\d+),\d+\): error (TS\d+)/g)].map((m) => Number(m[1]))
    const source = fs.readFileSync(path.join(here, "fixtures/builder-misuse.ts"), "utf8").split("\n")
    const marked = source.flatMap((line, i) => (line.includes("// ERROR") ? [i + 1] : []))
    expect([...new Set(errorLines)]).toEqual(marked)
    expect(output).toContain(`'"metrics"' is not assignable to type '"model"'`)
  }, 60_000)
})
