/**
 * The two tools the bench times, each as a child process under GNU time: the installed `crucible`
 * (`packages/runner/bin/crucible.mjs`, the bundle) running a pipeline that loads the folders, merges
 * and saves a bf16 folder, and the PyTorch peer (`torch_bigmerge.py`) doing the same merge.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { runChild, type ChildRun } from "../merge/measure.ts"

/** The merges the bench runs. */
export type Method = "linear" | "ties"
export const METHODS: ReadonlyArray<Method> = ["linear", "ties"]
/** TIES keeps the largest 20% of each task vector, as mergekit's examples do. */
export const DENSITY = 0.2

/** One timed run of either tool. */
export interface ToolRun extends ChildRun {
  /** Seconds of the merge proper: Crucible's `save` stage (which pulls the lazy merge), torch's own timing. */
  readonly mergeSeconds: number
  /**
   * Seconds before it: Crucible's start-up, planning and stages before `save` (whatever the run does before
   * the merge, input digests included), torch's imports.
   */
  readonly startupSeconds: number
  /** Bytes of the output folder's shards. */
  readonly bytesWritten: number
}

/** The runs folder of the bench's `crucible run`s, under the bench's folder; removed after each run. */
export const RUNS = ".bigmerge-runs"

/** Bytes of the `.safetensors` files in `folder`. */
export const shardBytes = (folder: string): number =>
  fs.readdirSync(folder).filter((f) => f.endsWith(".safetensors")).reduce((t, f) => t + fs.statSync(path.join(folder, f)).size, 0)

/** The pipeline: model 0 … N−1 loaded from their folders; linear of all, or TIES of 1… over base 0; saved as bf16. */
export const pipeline = (method: Method, folders: ReadonlyArray<string>, out: string): string => {
  const loads = folders.map((f, i) => `  m${i}: { uses: load, with: { path: ${JSON.stringify(f)} } }`).join("\n")
  const names = folders.map((_, i) => `m${i}`)
  const merge = method === "linear"
    ? `  merged: { uses: merge/linear, with: { models: [${names.join(", ")}] } }`
    : `  merged: { uses: merge/ties, with: { base: m0, models: [${names.slice(1).join(", ")}], density: ${DENSITY} } }`
  return `version: 1\nname: bigmerge-${method}\nstages:\n${loads}\n${merge}\n  out: { uses: save, with: { model: merged, path: ${JSON.stringify(out + "/")}, dtype: bf16 } }\n`
}

/**
 * Runs `crucible run` of `method` over `folders` into the folder `out`; `work` holds the YAML and the
 * runs folder. The runs folder is removed after the run unless `keepRuns` (a rerun follows: it finds
 * the inputs' digests the first run remembered, as a user's second run over the same models does).
 */
export const crucible = (cli: string, method: Method, folders: ReadonlyArray<string>, out: string, work: string, runId: string, keepRuns = false): ToolRun => {
  const yaml = path.join(work, `bigmerge-${method}.yaml`)
  fs.writeFileSync(yaml, pipeline(method, folders, out))
  const runs = path.join(work, RUNS)
  const r = runChild(process.execPath, [cli, "run", yaml, "--quiet", "--no-cache", "--runs-dir", runs, "--run-id", runId], { cwd: work })
  if (r.code !== 0) throw new Error(`crucible run of ${yaml} failed (exit ${r.code}): ${r.stderr.slice(-2000)}`)
  const manifest = JSON.parse(fs.readFileSync(path.join(runs, runId, "manifest.json"), "utf8")) as {
    startedAt: string
    stages: Array<{ id: string; startedAt: string; durationMs: number }>
  }
  const save = manifest.stages.find((s) => s.id === "out")!
  // The whole runs folder goes, its remembered input digests (.cache/digests) with it: every round is a
  // first run, which hashes its inputs from the merge's reads (a later round would otherwise know them).
  if (!keepRuns) fs.rmSync(runs, { recursive: true, force: true })
  return { ...r, mergeSeconds: save.durationMs / 1000, startupSeconds: (Date.parse(save.startedAt) - r.spawnedAt) / 1000, bytesWritten: shardBytes(out) }
}

/** Runs the PyTorch peer of `method` over `folders` into the folder `out`, with `threads` torch threads. */
export const torch = (method: Method, folders: ReadonlyArray<string>, out: string, work: string, threads: number): ToolRun => {
  const peer = path.join(path.dirname(new URL(import.meta.url).pathname), "torch_bigmerge.py")
  const common = [peer, "--method", method, "--threads", String(threads), "--out", out]
  const args = method === "linear" ? [...common, ...folders] : [...common, "--base", folders[0]!, "--density", String(DENSITY), ...folders.slice(1)]
  const r = runChild("/usr/bin/python3", args, { cwd: work })
  if (r.code !== 0) throw new Error(`torch_bigmerge.py ${method} failed (exit ${r.code}): ${r.stderr.slice(-2000)}`)
  const line = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { wall_s: number }
  return { ...r, mergeSeconds: line.wall_s, startupSeconds: r.wallSeconds - line.wall_s, bytesWritten: shardBytes(out) }
}
