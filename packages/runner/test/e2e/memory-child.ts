// Child process of Memory.test.ts: writes three ~200 MB models, then merges them through the
// runner, and prints its baseline and peak RSS. Generation streams too (lazy tensors), so the
// baseline is taken after the inputs exist and before the merge starts.
import { Model, Safetensors, TensorRef } from "@crucible/core"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { Reporter } from "../../src/Events.ts"
import * as Runner from "../../src/Runner.ts"

const dir = process.argv[2]!
const MB = 1024 * 1024
// 12 matrices of 4M floats (16 MB) + small vectors ≈ 201 MB per model.
const shapes: Array<[string, number[]]> = []
for (let i = 0; i < 12; i++) shapes.push([`layers.${i}.weight`, [2048, 2048]], [`layers.${i}.bias`, [2048]])
shapes.push(["head.weight", [1000, 1024]])

const synthetic = (seed: number) =>
  Model.make(`synthetic-${seed}`, shapes.map(([name, shape]) => ({
    name,
    dtype: "F32" as const,
    shape,
    read: (range?: TensorRef.ElementRange) => {
      const { start, end } = TensorRef.rangeOf({ shape }, range)
      const out = new Float32Array(end - start)
      for (let i = 0; i < out.length; i++) out[i] = Math.sin((start + i) * 0.001 + seed) // cheap, deterministic
      return Effect.succeed(new Uint8Array(out.buffer))
    }
  })))

for (const seed of [1, 2, 3]) await Effect.runPromise(Safetensors.write(path.join(dir, `m${seed}.safetensors`), synthetic(seed)))
fs.writeFileSync(path.join(dir, "p.yaml"), `version: 1
name: memory
stages:
  a: { uses: load, with: { path: m1.safetensors } }
  b: { uses: load, with: { path: m2.safetensors } }
  c: { uses: load, with: { path: m3.safetensors } }
  avg: { uses: merge/linear, with: { models: [a, b, c] } }
  out: { uses: save, with: { model: avg, path: merged.safetensors } }
`)
;(globalThis as { gc?: () => void }).gc?.()
await new Promise((r) => setTimeout(r, 200))
const baseline = process.memoryUsage().rss
// maxRSS so far includes generation; the merge's own peak is sampled while it runs.
let peak = baseline
const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5)
const result = await Effect.runPromise(Runner.run(path.join(dir, "p.yaml"), { runsDir: path.join(dir, "runs") }).pipe(Effect.provideService(Reporter, Reporter.silent)))
clearInterval(sampler)
peak = Math.max(peak, process.memoryUsage().rss)
const inputBytes = fs.statSync(path.join(dir, "m1.safetensors")).size
process.stdout.write(JSON.stringify({ status: result.status, baselineMB: baseline / MB, peakMB: peak / MB, aboveMB: (peak - baseline) / MB, inputMB: inputBytes / MB }) + "\n")
