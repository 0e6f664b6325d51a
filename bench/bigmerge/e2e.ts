/**
 * The LLM-scale merge bench (issue 15): `crucible run` of linear and TIES over N Llama-shaped bf16
 * Hugging Face folders against the PyTorch peer on the same files, each measured against the disk
 * bound measured in the same run.
 *
 *   node bench/bigmerge/run.ts [--models 3] [--layers 32] [--methods linear,ties] [--dir DIR] [--out-dir DIR]
 *                              [--keep] [--no-torch] [--rounds N] [--threads N] [--cache cold|warm] [--out NAME]
 *
 * See README.md for the method. Prints a table and writes bench/out/<out>.json.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import * as DirectRead from "../../packages/core/src/io/DirectRead.ts"
import { compareFolders, extractSample, sample, type Difference } from "./compare.ts"
import * as Disk from "./disk.ts"
import * as Generate from "./generate.ts"
import * as Llama from "./llama.ts"
import * as Report from "./report.ts"
import { selfCheck } from "./selfcheck.ts"
import * as Tools from "./tools.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, "..", "..")
const { values: flags } = parseArgs({
  options: {
    models: { type: "string", default: "3" },
    layers: { type: "string", default: String(Llama.LLAMA_7B.layers) },
    methods: { type: "string", default: "linear,ties" },
    dir: { type: "string", default: path.join(os.tmpdir(), "crucible-bigmerge") },
    "out-dir": { type: "string" },
    keep: { type: "boolean", default: false },
    "no-torch": { type: "boolean", default: false },
    rounds: { type: "string" },
    threads: { type: "string", default: String(os.cpus().length) },
    cache: { type: "string" },
    direct: { type: "string" },
    out: { type: "string", default: "bigmerge" }
  }
})
const fail = (message: string): never => {
  console.error(`bigmerge: ${message}`)
  process.exit(2)
}
const count = Number(flags.models)
if (!Number.isInteger(count) || count < 2) fail(`--models ${flags.models}: need an integer ≥ 2 (TIES merges models 1… over base 0)`)
const dims: Llama.Dims = { ...Llama.LLAMA_7B, layers: Number(flags.layers) }
if (!Number.isInteger(dims.layers) || dims.layers < 1) fail(`--layers ${flags.layers}: need an integer ≥ 1`)
const methods = flags.methods.split(",") as Array<Tools.Method>
for (const m of methods) if (!Tools.METHODS.includes(m)) fail(`--methods: unknown method "${m}" (have: ${Tools.METHODS.join(", ")})`)
const withTorch = !flags["no-torch"]
const failures = selfCheck()
if (failures.length > 0) fail(`self-check failed, the bench's own numbers cannot be trusted:\n${failures.join("\n")}`)
const GB = 1e9

// Crucible reads (and writes) around the page cache by CRUCIBLE_DIRECT_READS (packages/core/src/io/DirectRead.ts):
// --direct sets it for the timed runs; unset, the children inherit this process's value (auto when none).
if (flags.direct !== undefined) {
  if (!["on", "off", "auto"].includes(flags.direct)) fail(`--direct ${flags.direct}: use on, off or auto`)
  process.env["CRUCIBLE_DIRECT_READS"] = flags.direct
}
// Recorded as the children read it ("1" is on, anything unknown auto), not as spelled.
const directReads = DirectRead.policy()
const dir = path.resolve(flags.dir)
const outDir = path.resolve(flags["out-dir"] ?? dir)
fs.mkdirSync(dir, { recursive: true })
fs.mkdirSync(outDir, { recursive: true })
const modelBytes = Generate.modelBytes(dims)
const inputBytes = count * modelBytes
// Whether the inputs can stay in the page cache: the machine's RAM less a margin for the processes.
const fitsInCache = inputBytes < 0.75 * os.totalmem()
const cache = flags.cache ?? (fitsInCache ? "warm" : "cold")
if (cache !== "cold" && cache !== "warm") fail(`--cache ${cache}: use cold (inputs evicted before every run) or warm (read into the page cache first)`)
if (cache === "warm" && !fitsInCache) fail(`--cache warm: ${count} models of ${(modelBytes / GB).toFixed(1)} GB do not fit this machine's page cache (${(os.totalmem() / GB).toFixed(1)} GB of RAM); use --cache cold or fewer --layers`)
const rounds = Number(flags.rounds ?? (cache === "cold" ? 1 : 3))

// Free space: the inputs not yet there, the disk test file, one output at a time (each deleted before
// the next tool runs) and the sampled tensors of Crucible's output kept for the comparison.
const missing = Array.from({ length: count }, (_, k) => k).filter((k) => !Generate.isComplete(Generate.folderOf(dir, dims.layers, k), dims, k))
const free = (p: string) => {
  const s = fs.statfsSync(p)
  return s.bavail * s.bsize
}
const sameFs = fs.statSync(dir).dev === fs.statSync(outDir).dev
const byName = new Map(Llama.tensors(dims).map((t) => [t.name, t.shape]))
const sampleBytes = sample(byName.keys()).reduce((t, n) => t + 2 * Llama.numel(byName.get(n)!), 0)
const outputs = modelBytes * 1.01 + (withTorch ? sampleBytes : 0)
const DISK_TEST = 2 * 2 ** 30
const needHere = missing.length * modelBytes + DISK_TEST + (sameFs ? outputs : 0)
if (needHere > free(dir)) fail(`${dir} has ${(free(dir) / GB).toFixed(1)} GB free; this run needs ${(needHere / GB).toFixed(1)} GB (${missing.length} model folders of ${(modelBytes / GB).toFixed(2)} GB to write, 2 GiB for the disk test${sameFs ? `, one output${withTorch ? " and the compared sample of it" : ""}` : ""}). Free space, or use --dir elsewhere, fewer --layers or --models, or --no-torch`)
if (!sameFs && outputs > free(outDir)) fail(`${outDir} has ${(free(outDir) / GB).toFixed(1)} GB free; the outputs need ${(outputs / GB).toFixed(1)} GB. Use another --out-dir or fewer --layers`)

console.log(`bigmerge: ${count} Llama-shaped bf16 folders of ${dims.layers} layers (${(Llama.parameters(dims) / 1e9).toFixed(2)} B parameters, ${(modelBytes / GB).toFixed(2)} GB each) in ${dir}; outputs in ${outDir}; ${os.cpus().length} CPUs, ${(os.totalmem() / GB).toFixed(1)} GB RAM, Node ${process.version}; page cache ${cache}; CRUCIBLE_DIRECT_READS ${directReads}; ${rounds} round(s)`)
const folders: Array<string> = []
const t0 = performance.now()
for (let k = 0; k < count; k++) {
  const t = performance.now()
  const r = await Generate.ensureModel(dir, dims, k)
  folders.push(r.folder)
  console.log(`  model ${k}: ${r.written ? `written in ${((performance.now() - t) / 1000).toFixed(1)} s (${(modelBytes / ((performance.now() - t) / 1000) / GB).toFixed(2)} GB/s)` : "reused"} ${r.folder}`)
}
const generationSeconds = (performance.now() - t0) / 1000
const shardFiles = folders.flatMap((f) => fs.readdirSync(f).filter((n) => n.endsWith(".safetensors")).map((n) => path.join(f, n)))

const disk = Disk.measure(dir, DISK_TEST)
const outIsTmpfs = !sameFs && Disk.isTmpfs(outDir)
console.log(`disk (${dir}): read ${(disk.readBytesPerSecond / GB).toFixed(2)} GB/s (${disk.readMethod}), write ${(disk.writeBytesPerSecond / GB).toFixed(2)} GB/s (${disk.writeMethod})${outIsTmpfs ? `; outputs on tmpfs (${outDir}): no write term in the bound` : ""}`)
const canDrop = Disk.canDropCaches()

// Before each timed run: cold evicts the inputs (and drops the whole cache where allowed), warm reads them in.
const prepare = (): void => {
  if (cache === "cold") {
    if (!Disk.evict(shardFiles)) fail("dd iflag=nocache could not evict the inputs from the page cache")
    Disk.dropCaches()
  } else Disk.warm(shardFiles)
}

const node = path.join(root, "packages", "runner", "bin", "crucible.mjs")
const threads = Number(flags.threads)
const results: Record<string, unknown> = {}
const rows: Array<Report.Row> = []
for (const method of methods) {
  const mine = path.join(outDir, `crucible-${method}`), theirs = path.join(outDir, `torch-${method}`)
  const kept = path.join(outDir, `crucible-${method}-sample`)
  const ours: Array<Tools.ToolRun> = [], reruns: Array<Tools.ToolRun> = [], peers: Array<Tools.ToolRun> = []
  for (let r = 1; r <= rounds; r++) {
    fs.rmSync(mine, { recursive: true, force: true })
    prepare()
    // Warm: a rerun follows each first run, with its runs folder (the inputs' digests remembered), the
    // output removed and the inputs read in again — a user's second merge of the same models.
    ours.push(Tools.crucible(node, method, folders, mine, dir, `bigmerge-${method}-${r}-${process.pid}`, cache === "warm"))
    if (cache === "warm") {
      fs.rmSync(mine, { recursive: true, force: true })
      prepare()
      reruns.push(Tools.crucible(node, method, folders, mine, dir, `bigmerge-${method}-${r}-rerun-${process.pid}`))
    }
    if (withTorch) {
      // Only the compared tensors of Crucible's output stay while torch writes: room for one output, not two.
      fs.rmSync(kept, { recursive: true, force: true })
      extractSample(mine, kept)
      fs.rmSync(mine, { recursive: true, force: true })
      fs.rmSync(theirs, { recursive: true, force: true })
      prepare()
      peers.push(Tools.torch(method, folders, theirs, dir, threads))
    }
    console.log(`  ${method} round ${r}: crucible ${ours.at(-1)!.wallSeconds.toFixed(1)} s${reruns.length > 0 ? `, rerun ${reruns.at(-1)!.wallSeconds.toFixed(1)} s` : ""}${withTorch ? `, torch ${peers.at(-1)!.wallSeconds.toFixed(1)} s` : ""}`)
  }
  const written = ours[0]!.bytesWritten
  const bound = Disk.bound(disk, inputBytes, outIsTmpfs ? 0 : written)
  const summary = (runs: ReadonlyArray<Tools.ToolRun>) => Report.summarize(runs, inputBytes, bound)
  const agreement: Difference | undefined = withTorch ? compareFolders(kept, theirs) : undefined
  fs.rmSync(mine, { recursive: true, force: true })
  fs.rmSync(kept, { recursive: true, force: true })
  fs.rmSync(theirs, { recursive: true, force: true })
  const c = summary(ours), again = reruns.length > 0 ? summary(reruns) : undefined, t = withTorch ? summary(peers) : undefined
  results[method] = { bytesRead: inputBytes, bytesWritten: written, bound, crucible: c, rerun: again, torch: t, agreement }
  rows.push(Report.row(method, "crucible", c))
  if (again !== undefined) rows.push(Report.row(method, "crucible rerun", again))
  if (t !== undefined) rows.push(Report.row(method, "torch", t))
}

console.log("")
console.log(Report.table(rows))
console.log(Report.notes({ cache, canDrop, outIsTmpfs, disk, results: results as Record<string, Report.MethodResult> }))

const report = {
  bench: "bigmerge",
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, totalMemoryBytes: os.totalmem() },
  models: count,
  dims,
  modelBytes,
  density: Tools.DENSITY,
  rounds,
  cache,
  directReads,
  dropCachesAllowed: canDrop,
  outputsOnTmpfs: outIsTmpfs,
  torchThreads: threads,
  generationSeconds,
  disk,
  note: "cold: every input shard evicted from the page cache (fadvise DONTNEED) before each run; warm: read in before each run. Wall from spawn to exit; GB/s = (bytes read + bytes written) / wall; bound = read bytes / read bw + written / write bw (serial) or the larger of the two (overlapped)",
  results
}
const reportDir = path.join(here, "..", "out")
fs.mkdirSync(reportDir, { recursive: true })
fs.writeFileSync(path.join(reportDir, `${flags.out}.json`), JSON.stringify(report, null, 2) + "\n")
console.log(`wrote ${path.join(reportDir, `${flags.out}.json`)}`)
if (!flags.keep) for (const f of folders) fs.rmSync(f, { recursive: true, force: true })
else console.log(`kept ${folders.join(", ")} (--keep: the next run with the same --dir and --layers reuses them)`)
for (const m of methods) fs.rmSync(path.join(dir, `bigmerge-${m}.yaml`), { force: true })
if (!flags.keep && fs.readdirSync(dir).length === 0) fs.rmdirSync(dir)
if (outDir !== dir && fs.readdirSync(outDir).length === 0) fs.rmdirSync(outDir)
