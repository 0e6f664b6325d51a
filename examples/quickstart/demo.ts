// `npm run demo`: prepares the quick-start inputs and runs examples/quickstart/pipeline.yaml
// with the same runner as `crucible run`, printing progress and the run directory.
import { DType, Model, Safetensors, TensorRef } from "@crucible/core"
import { Reporter } from "@crucible/runner/Events"
import * as Reporters from "@crucible/runner/cli/Reporters"
import * as Runner from "@crucible/runner/Runner"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))

// A small MLP-shaped checkpoint (PyTorch naming and layout) from a seeded generator.
const checkpoint = (seed: number) => {
  let s = seed
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s / 2 ** 32 - 0.5)
  const tensor = (name: string, shape: Array<number>) =>
    TensorRef.fromBytes(name, "F32", shape, DType.fromNumbers(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, next), "F32"))
  return Model.make(`seed ${seed}`, [
    tensor("layers.0.weight", [128, 784]), tensor("layers.0.bias", [128]),
    tensor("layers.1.weight", [10, 128]), tensor("layers.1.bias", [10])
  ])
}

const program = Effect.gen(function* () {
  fs.mkdirSync(path.join(here, "models"), { recursive: true })
  for (const [name, seed] of [["a", 1], ["b", 2]] as const) {
    const file = path.join(here, "models", `${name}.safetensors`)
    if (!fs.existsSync(file)) yield* Safetensors.write(file, checkpoint(seed))
  }
  const reporter = Reporters.make(Reporters.choose({ json: process.argv.includes("--json"), quiet: false }))
  const result = yield* Runner.run(path.join(here, "pipeline.yaml"), { runsDir: path.join(here, "..", "..", "runs") }).pipe(Effect.provideService(Reporter, reporter))
  process.exitCode = result.status === "succeeded" ? 0 : 1
})

Effect.runPromise(program).catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`)
  process.exitCode = 2
})
