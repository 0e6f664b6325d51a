/**
 * The cluster (issue 16) through the CLI users type: a private Postgres, `crucible worker --slots 1`
 * children on loopback, `crucible run P.yaml --cluster URL --store DIR`, against `crucible run P.yaml`.
 *
 *   node bench/cluster/run.ts [--workers-max 2] [--units 40] [--epochs-scale 1] [--no-soup] [--keep] [--no-build] [--dir DIR]
 *   (npm run bench -- cluster [flags])
 *
 * 1. examples/soup (a base training, 12 fine-tunes of it, soups, evaluations) locally and on 1…N
 *    workers: wall time, speed-up over 1 worker, peak RSS of each worker (VmHWM) and of the CLI.
 * 2. Scheduling overhead: `--units` independent `load, load, merge/linear, save` units, locally
 *    (`--concurrency 1`, as serial as one worker with one slot) and on one worker: (cluster wall −
 *    local wall) / units, and per unit from the run folders the wait between the moment it could
 *    start (what it waits for has ended, the worker's slot is free) and its `run-started`.
 *
 * Every configuration gets a fresh store (nothing cached) and a database of its own. Prints a table
 * and writes bench/out/cluster.json. See README.md.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { type Cluster, crucible, postgres, ROOT, startCluster, type Timed } from "./cluster.ts"
import { soupTrainings, writeSoup, writeTiny } from "./pipelines.ts"
import { maxAtOnce, summary, type UnitTiming, unitTimings } from "./units.ts"

const { values: args } = parseArgs({
  options: {
    "workers-max": { type: "string", default: "2" },
    units: { type: "string", default: "40" },
    "epochs-scale": { type: "string", default: "1" },
    "no-soup": { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
    "no-build": { type: "boolean", default: false },
    dir: { type: "string" }
  }
})
const WORKERS_MAX = Number(args["workers-max"])
const UNITS = Number(args.units)
const EPOCHS_SCALE = Number(args["epochs-scale"])
if (!(Number.isInteger(WORKERS_MAX) && WORKERS_MAX >= 1)) throw new Error(`--workers-max: "${args["workers-max"]}" is not a whole number ≥ 1`)
if (!(Number.isInteger(UNITS) && UNITS >= 2)) throw new Error(`--units: "${args.units}" is not a whole number ≥ 2`)
if (!(EPOCHS_SCALE > 0)) throw new Error(`--epochs-scale: "${args["epochs-scale"]}" is not a positive number`)

if (!args["no-build"]) {
  const { ensureBuilt } = (await import(pathToFileURL(path.join(ROOT, "scripts", "build-cli.mjs")).href)) as { ensureBuilt: () => Promise<string> }
  await ensureBuilt()
}

const dir = args.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "crucible-bench-cluster-"))
fs.mkdirSync(dir, { recursive: true })
const say = (text: string) => process.stderr.write(`[cluster] ${text}\n`)

const ok = (what: string, r: Timed): Timed => {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${(r.stderr || r.stdout).slice(-3000)}`)
  return r
}

/** A local `crucible run` of `file` with a runs folder (and so a results store) of its own. */
const local = async (file: string, extra: ReadonlyArray<string> = []) =>
  ok(`crucible run ${file}`, await crucible(["run", file, "--quiet", "--runs-dir", path.join(path.dirname(file), "runs"), ...extra], path.dirname(file)))

interface OnCluster {
  readonly workers: number
  readonly run: Timed
  readonly units: ReadonlyArray<UnitTiming>
  readonly workerPeakRssMiB: ReadonlyArray<{ readonly id: string; readonly peakRssMiB: number | undefined }>
}

/** `crucible run file --cluster` on `workers` fresh workers over a fresh store; the workers stop after it. */
const onCluster = async (pg: Awaited<ReturnType<typeof postgres>>, name: string, file: string, workers: number): Promise<OnCluster> => {
  const work = path.dirname(file)
  const cluster: Cluster = await startCluster(pg, name, work, workers)
  try {
    const run = ok(`crucible run ${file} --cluster (${workers} worker${workers === 1 ? "" : "s"})`,
      await crucible(["run", file, "--quiet", "--cluster", cluster.url, "--store", cluster.store, "--run-id", name], work))
    const units = unitTimings(cluster.store, name)
    return { workers, run, units, workerPeakRssMiB: await cluster.stop() }
  } catch (e) {
    await cluster.stop()
    throw e
  }
}

const pg = await postgres()
const loadBefore = os.loadavg()
const results: Record<string, unknown> = {}
const table: Array<[string, string, string, string]> = []
const f1 = (x: number | undefined) => (x === undefined ? "–" : x.toFixed(1))
const f0 = (x: number | undefined) => (x === undefined ? "–" : x.toFixed(0))
const notes: Array<string> = []
/** "units w1:7 w2:5, at once ≤ 1/1": units per worker and the most it ran at once; notes a worker that ran more than its slot. */
const placement = (what: string, c: OnCluster) => {
  const most = maxAtOnce(c.units)
  const over = Object.entries(most).filter(([, n]) => n > 1)
  if (over.length > 0) notes.push(`${what}: workers started with --slots 1 ran ${over.map(([w, n]) => `${w}: ${n}`).join(", ")} units at once — the slot limit was not honoured, so this is not a 1-slot figure.`)
  const counts = c.workerPeakRssMiB.map((p) => `${p.id}:${c.units.filter((u) => u.worker === p.id).length}`).join(" ")
  return `units ${counts}, at once ≤ ${c.workerPeakRssMiB.map((p) => most[p.id] ?? 0).join("/")}`
}
const rss = (xs: ReadonlyArray<{ readonly peakRssMiB: number | undefined }>) => xs.map((w) => f0(w.peakRssMiB)).join(" / ")
try {
  // The CLI's first start fills V8's compile cache; no configuration should pay it.
  await crucible(["--version"], dir)

  if (!args["no-soup"]) {
    const soupLocal = writeSoup(path.join(dir, "soup-local"), EPOCHS_SCALE)
    say(`soup: local run (${soupTrainings(soupLocal)} trainings, epochs ×${EPOCHS_SCALE})`)
    const localRun = await local(soupLocal)
    table.push(["soup, local (--concurrency 2)", `${localRun.seconds.toFixed(1)} s`, "", `CLI ${f0(localRun.peakRssMiB)}`])
    const clusters: Array<OnCluster> = []
    for (let w = 1; w <= WORKERS_MAX; w++) {
      say(`soup: ${w} worker${w === 1 ? "" : "s"}`)
      const c = await onCluster(pg, `soup_w${w}`, writeSoup(path.join(dir, `soup-w${w}`), EPOCHS_SCALE), w)
      clusters.push(c)
      const perWorker = placement(`soup on ${w} worker${w === 1 ? "" : "s"}`, c)
      const speedUp = clusters[0]!.run.seconds / c.run.seconds
      const waits = summary(c.units.map((u) => u.waitMs))
      table.push(
        [`soup, ${w} worker${w === 1 ? "" : "s"} × 1 slot`, `${c.run.seconds.toFixed(1)} s`, w === 1 ? perWorker : `×${speedUp.toFixed(2)} vs 1 worker; ${perWorker}`, `workers ${rss(c.workerPeakRssMiB)}, CLI ${f0(c.run.peakRssMiB)}`],
        ["  wait ready → run-started", waits === undefined ? "–" : `median ${f0(waits.median)} ms`, waits === undefined ? "" : `p90 ${f0(waits.p90)} ms, max ${f0(waits.max)} ms`, ""]
      )
    }
    results.soup = {
      epochsScale: EPOCHS_SCALE,
      trainings: soupTrainings(soupLocal),
      local: { seconds: localRun.seconds, peakRssMiB: localRun.peakRssMiB, concurrency: 2 },
      cluster: clusters.map((c) => ({
        workers: c.workers,
        seconds: c.run.seconds,
        speedUpOver1Worker: clusters[0]!.run.seconds / c.run.seconds,
        submitterPeakRssMiB: c.run.peakRssMiB,
        workerPeakRssMiB: c.workerPeakRssMiB,
        unitsPerWorker: Object.fromEntries(c.workerPeakRssMiB.map((p) => [p.id, c.units.filter((u) => u.worker === p.id).length])),
        maxUnitsAtOncePerWorker: maxAtOnce(c.units),
        waitMs: summary(c.units.map((u) => u.waitMs))
      }))
    }
  }

  say(`overhead: ${UNITS} tiny units, local (--concurrency 1)`)
  const tinyLocal = await local(writeTiny(path.join(dir, "tiny-local"), UNITS), ["--concurrency", "1"])
  say(`overhead: ${UNITS} tiny units, 1 worker`)
  const tiny = await onCluster(pg, "tiny_w1", writeTiny(path.join(dir, "tiny-w1"), UNITS), 1)
  const ordered = [...tiny.units].sort((a, b) => a.startedAt - b.startedAt)
  const submitted = tiny.run.startedAt
  const firstUnitMs = ordered.length === 0 ? undefined : ordered[0]!.startedAt - submitted
  const lastEnd = ordered.length === 0 ? undefined : Math.max(...ordered.map((u) => u.endedAt))
  const waits = summary(ordered.slice(1).map((u) => u.waitMs))
  const unitWall = summary(ordered.map((u) => u.endedAt - u.startedAt))
  const perUnitMs = ((tiny.run.seconds - tinyLocal.seconds) * 1000) / UNITS
  table.push(
    [`${UNITS} tiny units, local (--concurrency 1)`, `${tinyLocal.seconds.toFixed(1)} s`, `${f0((tinyLocal.seconds * 1000) / UNITS)} ms a unit`, `CLI ${f0(tinyLocal.peakRssMiB)}`],
    [`${UNITS} tiny units, 1 worker × 1 slot`, `${tiny.run.seconds.toFixed(1)} s`, `overhead ${f0(perUnitMs)} ms a unit (wall − local) / ${UNITS}`, `worker ${rss(tiny.workerPeakRssMiB)}, CLI ${f0(tiny.run.peakRssMiB)}`],
    ["  placement", placement("tiny units", tiny), "", ""],
    ["  wait slot-free → run-started", waits === undefined ? "–" : `median ${f0(waits.median)} ms`, waits === undefined ? "" : `p90 ${f0(waits.p90)} ms, max ${f0(waits.max)} ms (units 2…${UNITS})`, ""],
    ["  a unit's own run (run-started → finished)", unitWall === undefined ? "–" : `median ${f0(unitWall.median)} ms`, unitWall === undefined ? "" : `p90 ${f0(unitWall.p90)} ms`, ""],
    ["  spawn → first unit started", `${f0(firstUnitMs)} ms`, "CLI start, plan, submit, workflow, entity", ""],
    ["  last unit finished → CLI exit", `${f0(lastEnd === undefined ? undefined : tiny.run.endedAt - lastEnd)} ms`, "workflow result, follower's poll (250 ms), exit", ""]
  )
  results.overhead = {
    units: UNITS,
    localSeconds: tinyLocal.seconds,
    localConcurrency: 1,
    clusterSeconds: tiny.run.seconds,
    overheadPerUnitMs: perUnitMs,
    waitMs: waits,
    unitRunMs: unitWall,
    spawnToFirstUnitMs: firstUnitMs,
    lastUnitToExitMs: lastEnd === undefined ? undefined : tiny.run.endedAt - lastEnd,
    workerPeakRssMiB: tiny.workerPeakRssMiB,
    maxUnitsAtOncePerWorker: maxAtOnce(tiny.units),
    submitterPeakRssMiB: tiny.run.peakRssMiB,
    perUnit: ordered.map((u) => ({ unit: u.unit, worker: u.worker, startedAt: u.startedAt, endedAt: u.endedAt, waitMs: u.waitMs }))
  }
} finally {
  await pg.stop()
  if (!args.keep) fs.rmSync(dir, { recursive: true, force: true })
}

const machine = { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memoryGiB: os.totalmem() / 2 ** 30, node: process.version, loadBefore, loadAfter: os.loadavg() }
const widths = [0, 1, 2, 3].map((i) => Math.max(...table.map((r) => r[i]!.length)))
const line = (r: ReadonlyArray<string>) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()
process.stdout.write([
  `cluster bench — ${machine.cpus} CPUs (${machine.cpuModel}), load ${loadBefore.map((l) => l.toFixed(1)).join(" ")} before, ${machine.loadAfter.map((l) => l.toFixed(1)).join(" ")} after`,
  line(["", "wall", "", "peak RSS MiB"]),
  ...table.map(line),
  ...notes,
  `Workers run with --slots 1: on ${machine.cpus} CPUs, ${Math.min(machine.cpus, WORKERS_MAX)} workers is the most that can help.`,
  args.keep ? `kept: ${dir}` : ""
].filter((l) => l !== "").join("\n") + "\n")

const out = path.join(ROOT, "bench", "out")
fs.mkdirSync(out, { recursive: true })
fs.writeFileSync(path.join(out, "cluster.json"), JSON.stringify({ machine, workersMax: WORKERS_MAX, ...results, notes }, null, 2))
say(`wrote ${path.join(out, "cluster.json")}`)
