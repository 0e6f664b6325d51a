/**
 * The end-to-end merge bench: `crucible run` of a linear merge and of a TIES merge over four
 * generated 256 MiB float32 safetensors models, against the PyTorch script doing the same merge
 * (`torch_merge.py`: numpy memmap reads, torch math, safetensors written by hand), each tool a
 * child process, alternating, in the same run.
 *
 *   node bench/merge/run.ts [--rounds 3] [--methods linear,ties] [--dir DIR] [--threads 2] [--keep] [--no-torch]
 *                           [--tree CHECKOUT] [--out NAME]
 *
 * `--tree` runs the `crucible` of another checkout (e.g. one with a proposed patch applied; see
 * proposed/) and `--out` names the report (default merge: bench/out/merge.json).
 *
 * Both tools read the same files from the page cache (one untimed warm-up run of each before the
 * timed rounds; the cache cannot be dropped here), write their output beside them and fsync it.
 * Reported per tool: wall time (spawn to exit, start-up included: median and best of the rounds),
 * GB/s = (bytes of every input read + bytes written) / wall, CPU time, and peak RSS (GNU time's
 * maxrss). Crucible's wall is split with its manifest into start-up, the merge and write (the
 * `save` stage, which pulls the lazy merge), and the sha256 of every input that a run records;
 * PyTorch's into its imports and its own measured merge. Beside them, in this process: memcpy
 * bandwidth and the merge kernels' throughput. The outputs of the two tools are compared.
 * Prints a table and writes bench/out/merge.json.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { compare, type Difference } from "./compare.ts"
import { median, memcpyGBps, runChild, type ChildRun } from "./measure.ts"
import * as Models from "./models.ts"
import * as Throughput from "./throughput.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, "..", "..")
const { values: flags } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    methods: { type: "string", default: "linear,ties" },
    dir: { type: "string" },
    threads: { type: "string", default: String(os.cpus().length) },
    keep: { type: "boolean", default: false },
    "no-torch": { type: "boolean", default: false },
    tree: { type: "string" },
    out: { type: "string", default: "merge" }
  }
})
const rounds = Number(flags.rounds)
const methods = flags.methods.split(",") as Array<"linear" | "ties">
const MODELS = 4
const DENSITY = 0.2
const GB = 1e9, MiB = 2 ** 20

const dir = fs.mkdtempSync(path.join(flags.dir ?? os.tmpdir(), "crucible-merge-bench-"))
console.log(`merge bench: ${MODELS} models of ${(Models.layout().reduce((t, [, s]) => t + s.reduce((a, b) => a * b, 1), 0) * 4 / MiB).toFixed(0)} MiB f32 in ${dir}; ${os.cpus().length} CPUs, Node ${process.version}; ${rounds} rounds, alternating`)
const t0 = performance.now()
const files = await Models.writeAll(dir, MODELS)
const inputBytes = files.map((f) => fs.statSync(f).size)
console.log(`generated in ${((performance.now() - t0) / 1000).toFixed(1)} s`)

const node = process.execPath
// The installed command (the bundle `npm run bench` has just rebuilt); another checkout's
// sources when it has no bundle.
const tree = flags.tree === undefined ? root : path.resolve(flags.tree)
const bundled = path.join(tree, "packages", "runner", "bin", "crucible.mjs")
const cli = fs.existsSync(path.join(tree, "packages", "runner", "dist", "crucible.mjs")) ? bundled : path.join(tree, "packages", "runner", "src", "cli", "main.ts")
const python = "/usr/bin/python3"
const peer = path.join(here, "torch_merge.py")

// Linear: the four models, equal weights. TIES: model 0 is the base, models 1–3 are merged.
const stagesOf = (method: string) => {
  const loads = files.map((f, i) => `  m${i}: { uses: load, with: { path: ${path.basename(f)} } }`).join("\n")
  const merge = method === "linear"
    ? "  merged: { uses: merge/linear, with: { models: [m0, m1, m2, m3] } }"
    : `  merged: { uses: merge/ties, with: { base: m0, models: [m1, m2, m3], density: ${DENSITY} } }`
  return `version: 1\nname: bench-${method}\nstages:\n${loads}\n${merge}\n  out: { uses: save, with: { model: merged, path: crucible-${method}.safetensors } }\n`
}
// Both merges read all four files once (TIES: the base and three models).
const bytesRead = inputBytes.reduce((a, b) => a + b, 0)

interface CrucibleRun extends ChildRun {
  readonly startupSeconds: number
  readonly mergeSeconds: number
  readonly hashSeconds: number
}
interface TorchRun extends ChildRun {
  readonly mergeSeconds: number
}

const crucible = (method: string, round: number): CrucibleRun => {
  const pipeline = path.join(dir, `${method}.yaml`)
  fs.writeFileSync(pipeline, stagesOf(method))
  const runId = `${method}-${round}`
  const r = runChild(node, [cli, "run", pipeline, "--quiet", "--runs-dir", path.join(dir, "runs"), "--run-id", runId], { cwd: dir })
  if (r.code !== 0) throw new Error(`crucible run failed (${r.code}): ${r.stderr.slice(-2000)}`)
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, "runs", runId, "manifest.json"), "utf8")) as {
    startedAt: string
    endedAt: string
    stages: Array<{ id: string; startedAt: string; durationMs: number }>
  }
  const save = manifest.stages.find((s) => s.id === "out")!
  const saveEnd = Date.parse(save.startedAt) + save.durationMs
  return {
    ...r,
    startupSeconds: (Date.parse(manifest.startedAt) - r.spawnedAt) / 1000,
    mergeSeconds: save.durationMs / 1000,
    hashSeconds: (Date.parse(manifest.endedAt) - saveEnd) / 1000
  }
}

const torch = (method: string): TorchRun => {
  const out = path.join(dir, `torch-${method}.safetensors`)
  const args = method === "linear"
    ? [peer, "--method", "linear", "--threads", flags.threads, "--out", out, ...files]
    : [peer, "--method", "ties", "--threads", flags.threads, "--base", files[0]!, "--density", String(DENSITY), "--out", out, ...files.slice(1)]
  const r = runChild(python, args, { cwd: dir })
  if (r.code !== 0) throw new Error(`torch_merge.py failed (${r.code}): ${r.stderr.slice(-2000)}`)
  const line = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { wall_s: number }
  return { ...r, mergeSeconds: line.wall_s }
}

const summarize = (runs: ReadonlyArray<ChildRun & { mergeSeconds: number }>, moved: number) => ({
  wallSeconds: { median: median(runs.map((r) => r.wallSeconds)), best: Math.min(...runs.map((r) => r.wallSeconds)), all: runs.map((r) => r.wallSeconds) },
  mergeSeconds: { median: median(runs.map((r) => r.mergeSeconds)), best: Math.min(...runs.map((r) => r.mergeSeconds)) },
  cpuSeconds: median(runs.map((r) => r.userSeconds + r.systemSeconds)),
  gbps: moved / median(runs.map((r) => r.wallSeconds)) / GB,
  peakRssBytes: Math.max(...runs.map((r) => r.peakRssBytes))
})

const results: Record<string, unknown> = {}
const table: Array<Array<string>> = []
for (const method of methods) {
  const out = inputBytes[0]!
  const moved = bytesRead + out
  // Warm-up: the page cache holds the inputs and both tools have run once. It is also Crucible's
  // first run over these files, which hashes them for the manifest; later runs find their
  // digests in the runs folder's cache (same path, size and mtime) and skip that.
  const first = crucible(method, 0)
  if (!flags["no-torch"]) torch(method)
  const ours: Array<CrucibleRun> = [], theirs: Array<TorchRun> = []
  for (let r = 1; r <= rounds; r++) {
    ours.push(crucible(method, r))
    if (!flags["no-torch"]) theirs.push(torch(method))
    process.stdout.write(`  ${method} round ${r}: crucible ${ours.at(-1)!.wallSeconds.toFixed(2)} s${theirs.length > 0 ? `, torch ${theirs.at(-1)!.wallSeconds.toFixed(2)} s` : ""}\n`)
  }
  const c = summarize(ours, moved)
  const phases = { startupSeconds: median(ours.map((r) => r.startupSeconds)), mergeSeconds: c.mergeSeconds.median, hashSeconds: median(ours.map((r) => r.hashSeconds)) }
  const t = theirs.length > 0 ? summarize(theirs, moved) : undefined
  const agreement: Difference | undefined = t === undefined ? undefined : await compare(path.join(dir, `crucible-${method}.safetensors`), path.join(dir, `torch-${method}.safetensors`))
  results[method] = {
    bytesRead,
    bytesWritten: out,
    crucible: { ...c, phases, firstRun: { wallSeconds: first.wallSeconds, hashSeconds: first.hashSeconds, peakRssBytes: first.peakRssBytes } },
    torch: t,
    ratios: t === undefined ? undefined : {
      wallTorchOverCrucible: { median: t.wallSeconds.median / c.wallSeconds.median, best: t.wallSeconds.best / c.wallSeconds.best },
      mergeTorchOverCrucible: t.mergeSeconds.median / c.mergeSeconds.median,
      peakRssCrucibleOverTorch: c.peakRssBytes / t.peakRssBytes
    },
    agreement
  }
  const f = (x: number) => x.toFixed(2)
  table.push([method, "crucible¹", f(first.wallSeconds), "-", f(moved / first.wallSeconds / GB), f(first.userSeconds + first.systemSeconds), (first.peakRssBytes / MiB).toFixed(0), `first run: inputs hashed while merging; ${f(first.hashSeconds)} s of hashing left after the save`])
  table.push([method, "crucible", f(c.wallSeconds.median), f(c.wallSeconds.best), f(c.gbps), f(c.cpuSeconds), (c.peakRssBytes / MiB).toFixed(0), `start ${f(phases.startupSeconds)} + merge ${f(phases.mergeSeconds)} + after ${f(phases.hashSeconds)}`])
  if (t !== undefined) table.push([method, "torch", f(t.wallSeconds.median), f(t.wallSeconds.best), f(t.gbps), f(t.cpuSeconds), (t.peakRssBytes / MiB).toFixed(0), `imports ${f(t.wallSeconds.median - t.mergeSeconds.median)} + merge ${f(t.mergeSeconds.median)}`])
}

// In this process, after the child runs (so they had the machine to themselves).
const memcpy = memcpyGBps()
const n = 4096 * 4096
const kernels = [...(await Throughput.linear(n, MODELS, 1 << 20, 3)), await Throughput.ties(n, MODELS - 1, DENSITY, 1)]

const pad = (s: string, w: number) => s.padEnd(w)
console.log("")
const head = ["method", "tool", "wall s (med)", "best", "GB/s", "cpu s", "peak MiB", "split (median s)"]
const widths = [8, 11, 14, 7, 7, 7, 10, 0]
for (const row of [head, ...table]) console.log(row.map((c, i) => pad(c, widths[i]!)).join(""))
console.log("¹ the untimed warm-up: Crucible's first run over these files hashes them (on worker threads, during the merge); the timed runs reuse the digests")
console.log("")
for (const method of methods) {
  const r = results[method] as { ratios?: { wallTorchOverCrucible: { median: number; best: number }; mergeTorchOverCrucible: number; peakRssCrucibleOverTorch: number }; agreement?: Difference }
  if (r.ratios === undefined) continue
  const a = r.agreement!
  console.log(`${method}: torch wall / crucible wall ${r.ratios.wallTorchOverCrucible.median.toFixed(2)}× (median), ${r.ratios.wallTorchOverCrucible.best.toFixed(2)}× (best); merge alone ${r.ratios.mergeTorchOverCrucible.toFixed(2)}×; crucible peak RSS ${(r.ratios.peakRssCrucibleOverTorch * 100).toFixed(0)}% of torch's`)
  console.log(`  outputs: ${a.differing} of ${a.elements} elements differ (${a.beyondRounding} by more than float32 rounding: 1e-6 of the tensor's max |x|), max |Δ| ${a.maxAbs.toExponential(2)} (${a.maxRelToScale.toExponential(2)} of the tensor's max |x|, in ${a.worst ?? "-"})${a.mismatched.length > 0 ? `; mismatched tensors: ${a.mismatched.join(", ")}` : ""}`)
}
console.log(`\nmemcpy, 1 thread: ${memcpy.toFixed(1)} GB/s (read + write)`)
for (const k of kernels) console.log(`${pad(k.kernel, 60)}${k.gbps.toFixed(2)} GB/s  (${((k.gbps / memcpy) * 100).toFixed(0)}% of memcpy)`)

const report = {
  bench: "merge",
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, totalMemoryGiB: os.totalmem() / 2 ** 30 },
  models: MODELS,
  modelBytes: inputBytes[0],
  density: DENSITY,
  rounds,
  torchThreads: Number(flags.threads),
  crucibleCli: cli,
  note: "page cache warm for both tools (one untimed run each first); outputs fsynced to the bench folder's disk; shared machine: figures are noisy, medians and bests of the rounds; timed crucible runs reuse the input digests cached by the first run (crucible.firstRun has the first run, which hashes them)",
  results,
  memcpyGBps: memcpy,
  kernels
}
const outDir = path.join(here, "..", "out")
fs.mkdirSync(outDir, { recursive: true })
fs.writeFileSync(path.join(outDir, `${flags.out}.json`), JSON.stringify(report, null, 2) + "\n")
console.log(`wrote ${path.join(outDir, `${flags.out}.json`)}`)
if (!flags.keep) fs.rmSync(dir, { recursive: true, force: true })
else console.log(`kept ${dir}`)
