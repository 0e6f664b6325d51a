/**
 * Benchmark of alignment: the linear assignment solver alone (n = 512, 1024) and Git Re-Basin
 * weight matching of two 784-512-512-512-10 MLPs (random weights, seeded), against a Python peer
 * measured in the same run (bench/align/peer.py: scipy's linear_sum_assignment when installed,
 * else a numpy port of it; the reference weight-matching loop in numpy with BLAS pinned to one
 * thread, as the TypeScript is single-threaded).
 *
 *   node bench/align/run.ts        (Node 22; writes bench/out/align.json)
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Gemm from "../../packages/strategies/src/align/internal/Gemm.ts"
import * as Random from "../../packages/strategies/src/align/internal/Random.ts"
import * as Lap from "../../packages/strategies/src/align/Lap.ts"
import type { Param, Params } from "../../packages/strategies/src/align/Params.ts"
import * as Permute from "../../packages/strategies/src/align/Permute.ts"
import * as Spec from "../../packages/strategies/src/align/PermutationSpec.ts"
import * as WeightMatching from "../../packages/strategies/src/align/WeightMatching.ts"

// `effect` is a dependency of the strategies package, not of the repository root.
const fromStrategies = createRequire(new URL("../../packages/strategies/package.json", import.meta.url))
const { Effect } = (await import(fromStrategies.resolve("effect"))) as typeof import("../../packages/strategies/node_modules/effect/dist/index.js")

const here = path.dirname(fileURLToPath(import.meta.url))
const outFile = path.join(here, "..", "out", "align.json")
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-bench-align-"))

const median = (xs: ReadonlyArray<number>): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const time = <A>(f: () => A): { value: A; ms: number } => {
  const started = performance.now()
  const value = f()
  return { value, ms: performance.now() - started }
}

/** Writes a typed array for the peer; returns its manifest entry. */
const dump = (name: string, data: Float32Array | Float64Array, shape: ReadonlyArray<number>) => {
  const file = `${name.replace(/[^\w.-]/g, "_")}.bin`
  fs.writeFileSync(path.join(scratch, file), new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
  return { file, shape, dtype: data instanceof Float32Array ? "f32" : "f64" }
}

// ---------------------------------------------------------------------------------------------
// Problems

const lapProblems = [512, 1024].flatMap((n) => {
  const random = Random.make(n)
  const uniform = Float64Array.from({ length: n * n }, () => random.next())
  // Scores shaped like weight matching's: inner products of two sets of 64-dim random vectors.
  const k = 64
  const x = Random.normals(random, n * k)
  const y = Random.normals(random, n * k)
  const product = new Float64Array(n * n)
  Gemm.js.addABt(x, y, n, n, k, product)
  return [
    { name: `uniform n=${n}`, n, scores: uniform },
    { name: `inner products n=${n}`, n, scores: product }
  ]
})

const widths = [784, 512, 512, 512, 10]
const layerNames = widths.slice(1).map((_, i) => `layers.${i}`)
const mlpSpec = Spec.mlp(layerNames)
const mlp = (seed: number): Params => {
  const random = Random.make(seed)
  return new Map(layerNames.flatMap((name, i): Array<[string, Param]> => [
    [`${name}.weight`, { shape: [widths[i + 1]!, widths[i]!], data: Random.normals(random, widths[i + 1]! * widths[i]!, 1 / Math.sqrt(widths[i]!)) }],
    [`${name}.bias`, { shape: [widths[i + 1]!], data: Random.normals(random, widths[i + 1]!, 0.1) }]
  ]))
}
const a = mlp(1)
const hidden = new Map(Object.keys(mlpSpec).map((name) => [name, Random.permutation(Random.make(7), 512)]))
const matchingProblems = [
  { name: "independent A, B", a, b: mlp(2) },
  { name: "B = permuted A", a, b: Effect.runSync(Permute.apply(a, mlpSpec, hidden)) }
]

// ---------------------------------------------------------------------------------------------
// Ours

const lapResults = lapProblems.map(({ name, n, scores }) => {
  Lap.maximizeUnchecked(scores, n)
  const runs = Array.from({ length: 7 }, () => time(() => Lap.maximizeUnchecked(scores, n)))
  return { name, n, ms: median(runs.map((r) => r.ms)), score: runs[0]!.value.score }
})

const matchingResults = matchingProblems.map(({ name, a, b }) => {
  const runs = Array.from({ length: 5 }, () => time(() => Effect.runSync(WeightMatching.match(a, b, mlpSpec, { seed: 0 }))))
  const result = runs[0]!.value
  const aligned = Effect.runSync(Permute.apply(b, mlpSpec, result.permutations))
  const exact = [...a].every(([key, p]) => p.data.every((v, i) => v === aligned.get(key)!.data[i]))
  return { name, firstMs: runs[0]!.ms, medianMs: median(runs.map((r) => r.ms)), sweeps: result.sweeps, objective: result.objective.at(-1)!, alignedEqualsA: exact }
})

const kernelResults = (["wasm", "js"] as const).map((kind) => {
  const gemm = kind === "wasm" ? Gemm.make() : Gemm.js
  const [m, n, k] = [512, 512, 784]
  const random = Random.make(3)
  const x = Random.normals(random, m * k)
  const y = Random.normals(random, n * k)
  const out = new Float64Array(m * n)
  gemm.addABt(x, y, m, n, k, out)
  const ms = median(Array.from({ length: 5 }, () => time(() => gemm.addABt(x, y, m, n, k, out)).ms))
  return { kind: gemm.kind, shape: `${m}×${k} · (${n}×${k})ᵀ`, ms, gflops: (2 * m * n * k) / ms / 1e6 }
})

const oursPeakMib = process.resourceUsage().maxRSS / 1024

// ---------------------------------------------------------------------------------------------
// Peer

const manifest = {
  lap: lapProblems.map(({ name, n, scores }) => ({ name, repeats: 3, scores: dump(name, scores, [n, n]) })),
  weight_matching: matchingProblems.map(({ name, a, b }, index) => ({
    name,
    spec: mlpSpec,
    a: Object.fromEntries([...a].map(([key, p]) => [key, dump(`a${index}-${key}`, p.data, p.shape)])),
    b: Object.fromEntries([...b].map(([key, p]) => [key, dump(`b${index}-${key}`, p.data, p.shape)]))
  }))
}
fs.writeFileSync(path.join(scratch, "problems.json"), JSON.stringify(manifest))
const python = "/usr/bin/python3"
const threads = { OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1", MKL_NUM_THREADS: "1" }
const peerRun = fs.existsSync(python)
  ? spawnSync(python, [path.join(here, "peer.py"), scratch], { encoding: "utf8", env: { ...process.env, ...threads }, maxBuffer: 1 << 24 })
  : undefined
fs.rmSync(scratch, { recursive: true, force: true })
type PeerOutput = {
  solver: string
  numpy: string
  peak_rss_mib: number
  lap: Array<{ name: string; seconds: number; score: number }>
  weight_matching: Array<{ name: string; seconds: number; sweeps: number; score_s: number; solve_s: number; objective: number }>
}
const peer: PeerOutput | undefined = peerRun?.status === 0 ? JSON.parse(peerRun.stdout) : undefined
const peerProblem = peerRun === undefined ? `${python} not found` : peerRun.status === 0 ? undefined : peerRun.stderr.trim().split("\n").at(-1)

// ---------------------------------------------------------------------------------------------
// Report

const fixed = (x: number | undefined, digits = 1) => (x === undefined ? "—" : x.toFixed(digits))
const ratio = (peerMs: number | undefined, oursMs: number) => (peerMs === undefined ? undefined : peerMs / oursMs)
const report = {
  machine: { cpu: os.cpus()[0]?.model ?? "unknown", cores: os.cpus().length, node: process.version },
  peer: peer === undefined ? { error: peerProblem } : { solver: peer.solver, numpy: peer.numpy, blasThreads: 1, peakRssMib: peer.peak_rss_mib },
  lap: lapResults.map((r, i) => {
    const p = peer?.lap[i]
    return { ...r, peerMs: p === undefined ? undefined : p.seconds * 1000, speedup: ratio(p && p.seconds * 1000, r.ms), sameOptimum: p === undefined ? undefined : Math.abs(p.score - r.score) <= 1e-9 * Math.abs(r.score) }
  }),
  weightMatching: matchingResults.map((r, i) => {
    const p = peer?.weight_matching[i]
    return { ...r, targetMs: 1000, peerMs: p && p.seconds * 1000, peerSweeps: p?.sweeps, peerScoreMs: p && p.score_s * 1000, peerSolveMs: p && p.solve_s * 1000, peerObjective: p?.objective, speedup: ratio(p && p.seconds * 1000, r.medianMs) }
  }),
  kernels: kernelResults,
  oursPeakRssMib: oursPeakMib
}
fs.mkdirSync(path.dirname(outFile), { recursive: true })
fs.writeFileSync(outFile, JSON.stringify(report, null, 2) + "\n")

const lines = [
  `align benchmark — ${report.machine.cpu}, ${report.machine.cores} cores, Node ${report.machine.node}`,
  `peer: ${peer === undefined ? `unavailable (${peerProblem})` : `${peer.solver}, numpy ${peer.numpy}, BLAS 1 thread`}`,
  "",
  "linear assignment (maximise), median of 7 (peer: 3)",
  ...report.lap.map((r) => `  ${r.name.padEnd(22)} ours ${fixed(r.ms).padStart(7)} ms   peer ${fixed(r.peerMs).padStart(8)} ms   ×${fixed(r.speedup)}   same optimum: ${r.sameOptimum ?? "—"}`),
  "",
  "weight matching, MLP 784-512-512-512-10 (target ≤ 1000 ms), ours first run / median of 5",
  ...report.weightMatching.map((r) => [
    `  ${r.name.padEnd(18)} ours ${fixed(r.firstMs, 0)} / ${fixed(r.medianMs, 0)} ms in ${r.sweeps} sweeps   peer ${fixed(r.peerMs, 0)} ms in ${r.peerSweeps ?? "—"} sweeps (scores ${fixed(r.peerScoreMs, 0)} ms, assignment ${fixed(r.peerSolveMs, 0)} ms)   ×${fixed(r.speedup)}`,
    `  ${"".padEnd(18)} objective ours ${fixed(r.objective, 3)}  peer ${fixed(r.peerObjective, 3)}   aligned B == A: ${r.alignedEqualsA}`
  ]).flat(),
  "",
  "score kernel A·Bᵀ",
  ...report.kernels.map((k) => `  ${k.kind.padEnd(5)} ${k.shape}  ${fixed(k.ms)} ms  ${fixed(k.gflops)} GFLOP/s`),
  "",
  `peak RSS: ours ${fixed(oursPeakMib, 0)} MiB, peer ${fixed(peer?.peak_rss_mib, 0)} MiB`,
  `wrote ${path.relative(process.cwd(), outFile)}`
]
console.log(lines.join("\n"))
