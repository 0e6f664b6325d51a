// The fixture of the kill-9 soak and the concurrent runs: two seeded ~48 MiB f32 models (written
// at test time, deterministic bytes), a pipeline that trains, merges them (~96 MiB read) and saves
// both results, and the checks on what a runs folder holds afterwards.
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect } from "effect"
import * as Manifest from "../../src/Manifest.ts"
import { writeModel } from "./models.ts"

/** 12 tensors of 1M floats per model: 48 MiB each, the same names and shapes in both. */
const specs = Array.from({ length: 12 }, (_, i) => ({ name: `layer${i}.weight`, shape: [1024, 1024] }))

/** Writes `a.safetensors` and `b.safetensors` into `dir`; returns their paths. */
export const writeSoakModels = async (dir: string): Promise<{ readonly a: string; readonly b: string }> => {
  const a = path.join(dir, "a.safetensors")
  const b = path.join(dir, "b.safetensors")
  await writeModel(a, specs, 11)
  await writeModel(b, specs, 12)
  return { a, b }
}

/** The files the pipeline saves, relative to its output folder. */
export const OUTPUTS = ["merged.safetensors", "trained.safetensors"] as const

/**
 * The pipeline, with absolute paths: its models in, its saves under `outDir`. The training is small
 * (MNIST's fit split, a 784-32-10 MLP, 10 epochs: a few seconds) and checkpoints every epoch.
 */
export const soakPipeline = (models: { readonly a: string; readonly b: string }, outDir: string): string => `version: 1
name: soak
stages:
  m: { uses: train, with: { arch: { type: mlp, layers: [784, 32, 10] }, data: mnist, split: fit, seed: 3, epochs: 10, batch_size: 100 } }
  a: { uses: load, with: { path: ${JSON.stringify(models.a)} } }
  b: { uses: load, with: { path: ${JSON.stringify(models.b)} } }
  avg: { uses: merge/linear, with: { models: [a, b], weights: [0.3, 0.7] } }
  merged: { uses: save, with: { model: avg, path: ${JSON.stringify(path.join(outDir, OUTPUTS[0]))} } }
  trained: { uses: save, with: { model: m, path: ${JSON.stringify(path.join(outDir, OUTPUTS[1]))} } }
  score: { uses: evaluate, with: { model: m, data: mnist, split: val } }
`

/** The sha256 of each output under `outDir` (undefined where missing). */
export const outputDigests = (outDir: string): Record<string, string | undefined> =>
  Object.fromEntries(OUTPUTS.map((name) => {
    const file = path.join(outDir, name)
    return [name, fs.existsSync(file) ? createHash("sha256").update(fs.readFileSync(file)).digest("hex") : undefined]
  }))

/** Every file under `dir` (relative paths), or none when it does not exist. */
export const filesUnder = (dir: string): Array<string> =>
  fs.existsSync(dir) ? fs.readdirSync(dir, { recursive: true, encoding: "utf8" }) : []

/** Temporaries left anywhere under `dir`: `.<name>.<owner>.<random>.partial` files and folders. */
export const partialsUnder = (dir: string): Array<string> => filesUnder(dir).filter((f) => path.basename(f).endsWith(".partial"))

/** What a runs folder's store keeps that no run should leave behind once none is running. */
export const leftovers = (runsDir: string): { readonly tmp: Array<string>; readonly locks: Array<string> } => ({
  tmp: filesUnder(path.join(runsDir, ".cache", "tmp")),
  locks: filesUnder(path.join(runsDir, ".cache", "locks")).filter((f) => f.endsWith(".lock"))
})

/** A run's manifest as written, and its status as views show it (`crashed` for a dead owner). */
export const manifestOf = (runsDir: string, runId: string): { readonly manifest: Manifest.Manifest; readonly shown: Manifest.ShownStatus } | undefined => {
  const file = path.join(runsDir, runId, "manifest.json")
  if (!fs.existsSync(file)) return undefined
  const manifest = Effect.runSync(Manifest.read(file))
  return { manifest, shown: Manifest.effectiveStatus(manifest) }
}

/** Stage id → its manifest record's `cached`, for a run's manifest. */
export const cachedStages = (manifest: Manifest.Manifest): Record<string, boolean> =>
  Object.fromEntries(manifest.stages.map((s) => [s.id, s.cached === true]))

/** The `type`s and stages of a run's `events.jsonl`, in order. */
export const eventsOf = (runsDir: string, runId: string): Array<{ readonly type: string; readonly stage?: string; readonly [k: string]: unknown }> => {
  const file = path.join(runsDir, runId, "events.jsonl")
  if (!fs.existsSync(file)) return []
  return fs.readFileSync(file, "utf8").split("\n").filter((l) => l.trim() !== "").flatMap((l) => {
    try { return [JSON.parse(l)] } catch { return [] } // a kill can cut the last line
  })
}

/** An `onTestFinished` hook: removes the test's folder when it passed, else says where it is kept. */
export const keepIfFailed = (dir: string) => ({ task }: { readonly task: { readonly result?: { readonly state?: string } | undefined } }) => {
  if (task.result?.state === "pass") fs.rmSync(dir, { recursive: true, force: true })
  else console.log(`kept for inspection: ${dir}`)
}

/** mulberry32, for the kill moments (the models use their own stream). */
export { rng } from "./models.ts"
