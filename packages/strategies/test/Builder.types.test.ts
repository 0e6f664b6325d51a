// The typed builder against every built-in kind: tsc compiles two fixtures (as a user's code,
// importing `@crucible/core` and `@crucible/strategies`). One composes every kind with its
// documented params and must compile cleanly; in the other, exactly the lines marked `// ERROR` fail.
import { describe, expect, it } from "vitest"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Builtin } from "../src/Builtin.ts"
import * as Strategies from "../src/index.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, "../../..")
const everyKind = path.join(here, "fixtures/builder-every-kind.ts")
const misuse = path.join(here, "fixtures/builder-misuse.ts")

/** tsc's error lines per fixture (one run for both: a run costs ~10 s), and its whole output. */
const compile = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "builder-types-"))
  const tsconfig = path.join(dir, "tsconfig.json")
  fs.writeFileSync(tsconfig, JSON.stringify({
    extends: path.join(root, "tsconfig.base.json"),
    compilerOptions: { noEmit: true, types: ["node"], typeRoots: [path.join(root, "node_modules/@types")] },
    files: [everyKind, misuse]
  }))
  let output = ""
  try {
    execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", tsconfig], { encoding: "utf8" })
  } catch (e) {
    output = String((e as { stdout: string }).stdout)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
  const linesOf = (file: string) => [...new Set([...output.matchAll(new RegExp(`${path.basename(file).replace(".", "\\.")}\\((\\d+),\\d+\\): error TS\\d+`, "g"))].map((m) => Number(m[1])))]
  return { output, everyKind: linesOf(everyKind), misuse: linesOf(misuse) }
}

describe("the builder's types for the built-in kinds", () => {
  it("every kind in Builtin is exported from @crucible/strategies and composed in the every-kind fixture", () => {
    const source = fs.readFileSync(everyKind, "utf8")
    const exports = Object.entries(Strategies)
    const missing = Object.entries(Builtin).flatMap(([uses, kind]) => {
      const name = exports.find(([, value]) => value === kind)?.[0]
      if (name === undefined) return [`${uses}: not exported from @crucible/strategies`]
      return new RegExp(`\\.stage\\("[^"]+", ${name}, `).test(source) ? [] : [`${uses}: no p.stage(…, ${name}, …) in ${path.basename(everyKind)}`]
    })
    expect(missing).toEqual([])
  })

  it("compiles every kind with its documented params, and rejects wrong ports, params, types and inputs on the marked lines", () => {
    const { output, everyKind: cleanErrors, misuse: misuseErrors } = compile()
    expect(cleanErrors, output).toEqual([])
    const marked = fs.readFileSync(misuse, "utf8").split("\n").flatMap((line, i) => (line.includes("// ERROR") ? [i + 1] : []))
    expect(misuseErrors, output).toEqual(marked)
    // Each reason, not only a line: a port, a name, a missing input, an input the kind lacks.
    expect(output).toContain(`Type 'Ref<"metrics">' is not assignable to type 'Ref<"model">'`)
    expect(output).toContain(`'densty' does not exist`)
    expect(output).toContain(`Property 'base' is missing`)
    expect(output).toContain(`Property 'statistics' is missing`)
    expect(output).toContain(`'statistics' does not exist`)
    expect(output).toContain(`'base' does not exist`)
  }, 120_000)
})
