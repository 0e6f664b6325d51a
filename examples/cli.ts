// What the examples' tests share: the `crucible` they run (the installed command — the bundled
// CLI, built by the root vitest setup — as a user runs it), a run of an example's pipeline into a
// fresh runs folder, the output values a stage left in the run's manifest, `inspect --json`, and
// the tensors of a safetensors file (read by Crucible's own reader).
import { DType, Safetensors } from "@crucible/core"
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../packages/runner/bin/crucible.mjs")

/** A finished `crucible run` of an example: its exit, stderr and run directory. */
export interface ExampleRun {
  readonly status: number | null
  readonly stderr: string
  /** `<runs>/test`, where the manifest, the trace and the plots are. */
  readonly runDir: string
}

/** Runs `<dir>/<pipeline>` (pipeline.yaml unless named) with run id `test` into a fresh runs folder. */
export const runPipeline = (dir: string, pipeline = "pipeline.yaml"): ExampleRun => {
  const runs = fs.mkdtempSync(path.join(os.tmpdir(), `${path.basename(dir)}-`))
  const r = spawnSync(process.execPath, [cli, "run", path.join(dir, pipeline), "--runs-dir", runs, "--run-id", "test", "--quiet"], { encoding: "utf8", timeout: 300_000 })
  return { status: r.status, stderr: r.stderr, runDir: path.join(runs, "test") }
}

/** The output values of each stage of a run, by stage id (from its manifest). */
export const stageValues = (run: ExampleRun): ((id: string) => Record<string, any>) => {
  const manifest = JSON.parse(fs.readFileSync(path.join(run.runDir, "manifest.json"), "utf8")) as { stages: Array<{ id: string; output: { values: Record<string, any> } }> }
  return (id) => manifest.stages.find((s) => s.id === id)!.output.values
}

/** `crucible inspect <file> --json`, parsed. */
export const inspect = (file: string): any => JSON.parse(spawnSync(process.execPath, [cli, "inspect", file, "--json"], { encoding: "utf8" }).stdout)

/** Every tensor of a safetensors file as float64 values (exact for F32), by name. */
export const readTensors = (file: string): Promise<Map<string, Float64Array>> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const model = yield* Safetensors.read(file)
        const out = new Map<string, Float64Array>()
        for (const t of model.tensors.values()) out.set(t.name, DType.toFloat64(yield* t.read(), t.dtype))
        return out
      })
    )
  )
