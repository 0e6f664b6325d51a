// The README's "In TypeScript" and "Your own stage kinds" code, copied as a user copies it: each
// block that starts with a file name comment is written to that file in a fresh folder, the
// TypeScript is type-checked with the project's settings, and the commands the README gives are run.
import { DType, Model, Safetensors, TensorRef } from "@crucible/core"
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, describe, expect, it } from "vitest"
import { cli, inspect } from "./cli.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const readme = fs.readFileSync(path.resolve(here, "../README.md"), "utf8")

/** Code blocks of the README whose first line names a file (`// merge.ts`, `# scaled.yaml`), by that name. */
const snippets = (): Map<string, string> => {
  const found = new Map<string, string>()
  for (const m of readme.matchAll(/```(?:ts|yaml)\n((?:\/\/|#) ([\w.-]+\.(?:ts|yaml))[^\n]*\n[\s\S]*?)```/g)) found.set(m[2]!, m[1]!)
  return found
}

// Inside examples/, so `@crucible/runner` resolves for run.ts as in a package that depends on it.
const dir = fs.mkdtempSync(path.join(here, ".readme-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

/** A model with LLaMA-like tensor names (layers 0 and 1), so filters and gradients have something to match. */
const writeModel = (file: string, seed: number) => {
  const names = ["layers.0.self_attn.q_proj.weight", "layers.0.mlp.up_proj.weight", "layers.1.self_attn.q_proj.weight", "layers.1.mlp.up_proj.weight"]
  const tensors = names.map((name, k) => {
    const values = Float64Array.from({ length: 24 }, (_, i) => Math.sin(seed * 7.1 + k * 3.3 + i * 0.37))
    return TensorRef.fromBytes(name, "F32", [4, 6], DType.fromNumbers(values, "F32"))
  })
  return Effect.runPromise(Safetensors.write(file, Model.make(file, tensors)))
}

const crucible = (...args: Array<string>) =>
  spawnSync(process.execPath, [cli, ...args, ...(args[0] === "run" ? ["--runs-dir", path.join(dir, "runs"), "--quiet"] : [])], { cwd: dir, encoding: "utf8" })

describe("the README's TypeScript and user-kind code", () => {
  it("type-checks and runs as the README says", async () => {
    const files = snippets()
    expect([...files.keys()].sort()).toEqual(["merge.ts", "my-kinds.ts", "run.ts", "scaled.yaml"])
    for (const [name, text] of files) fs.writeFileSync(path.join(dir, name), text)
    fs.mkdirSync(path.join(dir, "models"))
    for (const [name, seed] of [["base", 1], ["math", 2], ["code", 3]] as const) await writeModel(path.join(dir, "models", `${name}.safetensors`), seed)

    // Copy-pasteable means it compiles too (the examples' tsconfig: strict, exactOptionalPropertyTypes…).
    fs.writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify({ extends: "../../tsconfig.base.json", include: ["*.ts"] }))
    const tsc = spawnSync(process.execPath, [path.resolve(here, "../node_modules/typescript/bin/tsc"), "-p", dir], { encoding: "utf8" })
    expect(tsc.stdout).toBe("")

    const merged = crucible("run", "merge.ts")
    expect(merged.stderr).toBe("")
    expect(merged.status).toBe(0)
    expect(inspect(path.join(dir, "out/merged.safetensors")).tensors.map((t: { dtype: string }) => t.dtype)).toEqual(["BF16", "BF16", "BF16", "BF16"])

    const scaled = crucible("run", "scaled.yaml")
    expect(scaled.stderr).toBe("")
    expect(scaled.status).toBe(0)
    fs.writeFileSync(path.join(dir, "unnamed.yaml"), files.get("scaled.yaml")!.replace("kinds: [./my-kinds.ts]\n", ""))
    expect(crucible("validate", "unnamed.yaml").status).toBe(2)
    expect(crucible("validate", "unnamed.yaml", "--kinds", "my-kinds.ts").status).toBe(0)

    const program = spawnSync(process.execPath, ["run.ts"], { cwd: dir, encoding: "utf8" })
    expect(program.stderr).toBe("")
    expect(program.stdout).toMatch(/^succeeded .*runs[\\/]\d{8}-\d{6}-ties-two-[0-9a-f]{4}\n$/)
    const runDir = program.stdout.trim().split(" ")[1]!
    expect(fs.existsSync(path.join(runDir, "trace.json"))).toBe(true)
  }, 120_000)
})
