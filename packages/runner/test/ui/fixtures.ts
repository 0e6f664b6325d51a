// Real run directories for the dashboard tests, made by the real `crucible run` on generated models.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { crucibleAsync, startCrucible } from "../e2e/cli.ts"
import { writeModel } from "../e2e/models.ts"

/** A fresh directory under the OS temp dir. */
export const tmp = (prefix: string): string => fs.mkdtempSync(path.join(os.tmpdir(), `crucible-ui-${prefix}-`))

/**
 * A pipeline with every kind of stage the dashboard draws: loads and a merge of generated
 * safetensors models, a save, a load of a file that was expected after the save but is missing
 * (fails at run time: a stage with `needs:` may read what an earlier stage writes, so validation
 * leaves its input to the run) and the stages behind it (skipped),
 * two small Iris trainings (epochs as span events), their interpolation (a curve with its barrier,
 * an SVG artifact) and an evaluation (scalars and a per-class table).
 */
export const fusionYaml = `version: 1
name: fusion
description: Merge, train, interpolate, evaluate, and one stage that fails.
stages:
  a: { uses: load, with: { path: a.safetensors } }
  b: { uses: load, with: { path: b.safetensors } }
  avg: { uses: merge/linear, with: { models: [a, b], weights: [0.25, 0.75] } }
  out: { uses: save, with: { model: avg, path: out/avg.safetensors, dtype: bf16 } }
  missing: { uses: load, with: { path: nowhere.safetensors }, needs: [out] }
  bad: { uses: merge/linear, with: { models: [a, missing] } }
  bad_out: { uses: save, with: { model: bad, path: out/bad.safetensors } }
  fit_a: { uses: train, with: { arch: { type: mlp, layers: [4, 8, 3] }, data: iris, seed: 0, epochs: 4, batch_size: 30, validation: test, optimizer: { type: adam, lr: 0.02 } } }
  fit_b: { uses: train, with: { arch: { type: mlp, layers: [4, 8, 3] }, data: iris, seed: 1, epochs: 4, batch_size: 30, optimizer: { type: adam, lr: 0.02 } } }
  curve: { uses: evaluate/interpolation, with: { a: fit_a, b: fit_b, data: iris, split: test, points: 5 } }
  score: { uses: evaluate, with: { model: fit_a, data: iris, split: test } }
`

/** The stage ids of {@link fusionYaml}, in file order. */
export const fusionStages = ["a", "b", "avg", "out", "missing", "bad", "bad_out", "fit_a", "fit_b", "curve", "score"] as const

/** Runs {@link fusionYaml} with the real CLI into `dir/runs/<runId>`; the run fails (exit 1) because of `missing`. */
export const fusionRun = async (dir: string, runId = "fusion") => {
  const specs = [{ name: "w", shape: [16, 8] }, { name: "b", shape: [16] }]
  await writeModel(path.join(dir, "a.safetensors"), specs, 1)
  await writeModel(path.join(dir, "b.safetensors"), specs, 2)
  fs.writeFileSync(path.join(dir, "fusion.yaml"), fusionYaml)
  const runsDir = path.join(dir, "runs")
  const result = await crucibleAsync(["run", path.join(dir, "fusion.yaml"), "--runs-dir", runsDir, "--run-id", runId, "--quiet"])
  return { ...result, runsDir, runDir: path.join(runsDir, runId), pipeline: path.join(dir, "fusion.yaml") }
}

/**
 * A run that takes a few seconds: one model of 12 tensors of 1M floats saved four times with dtype
 * conversions, one save at a time, so the last save is still pending for seconds after the start.
 */
export const slowPipeline = async (dir: string): Promise<string> => {
  await writeModel(path.join(dir, "big.safetensors"), Array.from({ length: 12 }, (_, i) => ({ name: `t${i}`, shape: [1024, 1024] })), 3)
  const file = path.join(dir, "slow.yaml")
  fs.writeFileSync(file, `version: 1
name: slow
stages:
  big: { uses: load, with: { path: big.safetensors } }
  as_bf16: { uses: save, with: { model: big, path: out/bf16.safetensors, dtype: bf16 } }
  as_f64: { uses: save, with: { model: big, path: out/f64.safetensors, dtype: float64 } }
  as_f16: { uses: save, with: { model: big, path: out/f16.safetensors, dtype: float16 } }
  last: { uses: save, with: { model: big, path: out/last.safetensors, dtype: float64 } }
`)
  return file
}

/** Starts a CLI process and resolves with the first URL it prints (and the process). */
export const startWithUrl = (args: ReadonlyArray<string>, pattern: RegExp = /http:\/\/127\.0\.0\.1:\d+\/\S*/) =>
  new Promise<{ readonly url: string; readonly child: ReturnType<typeof startCrucible>; readonly output: () => string }>((resolve, reject) => {
    const child = startCrucible(args)
    let output = ""
    let found = false
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      const match = pattern.exec(output)
      if (match !== null && !found) {
        found = true
        resolve({ url: match[0], child, output: () => output })
      }
    }
    child.stdout.on("data", onData)
    child.stderr.on("data", onData)
    child.on("exit", (code) => {
      if (!found) reject(new Error(`crucible ${args.join(" ")} exited ${code} before printing a URL:\n${output}`))
    })
  })

/** Sends SIGINT to a child and waits for it to exit. */
export const stop = (child: ReturnType<typeof startCrucible>): Promise<number | null> =>
  new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode)
    child.on("exit", (code) => resolve(code))
    child.kill("SIGINT")
  })
