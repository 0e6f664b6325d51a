/**
 * Benchmark of `extract/lora`'s SVD on LLM-sized layers: RandomizedSvd.truncated (the randomized
 * range finder, q = 2, oversampling 10) on a 4096×4096 and an 11008×4096 ΔW (a Llama-7B attention
 * and MLP projection), rank 16 and 64 and energy 0.9, plus the exact Jacobi on 512×512 for scale.
 * Each case runs in its own child process so its peak RSS is its own.
 *
 * ΔW is a planted rank-64 signal (Gaussian factors, singular values falling 4× across the 64) plus
 * uniform noise at ~1/20 of the signal's Frobenius norm, as a fine-tune's delta looks; values come
 * from the repository's seeded generator, so every run decomposes the same matrices.
 *
 *   node bench/lora/run.ts        (or `npm run bench -- lora`; writes bench/out/lora.json)
 *   node bench/lora/run.ts --quick (skips the 11008×4096 cases)
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Random from "../../packages/strategies/src/backend/Random.ts"
import * as RandomizedSvd from "../../packages/strategies/src/extract/RandomizedSvd.ts"
import * as Svd from "../../packages/strategies/src/extract/Svd.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const outFile = path.join(here, "..", "out", "lora.json")

interface Case {
  readonly name: string
  readonly rows: number
  readonly cols: number
  readonly target: RandomizedSvd.Target | "exact"
}

const CASES: ReadonlyArray<Case> = [
  { name: "512x512 exact Jacobi", rows: 512, cols: 512, target: "exact" },
  { name: "512x512 rank 16", rows: 512, cols: 512, target: { rank: 16 } },
  { name: "4096x4096 rank 16", rows: 4096, cols: 4096, target: { rank: 16 } },
  { name: "4096x4096 rank 64", rows: 4096, cols: 4096, target: { rank: 64 } },
  { name: "4096x4096 energy 0.9", rows: 4096, cols: 4096, target: { energy: 0.9 } },
  { name: "11008x4096 rank 16", rows: 11008, cols: 4096, target: { rank: 16 } },
  { name: "11008x4096 rank 64", rows: 11008, cols: 4096, target: { rank: 64 } }
]

const PLANTED = 64

// Σ_c σ_c g_c h_cᵀ/√(m n) + noise, row-major float64.
const delta = (m: number, n: number): Float64Array => {
  const random = Random.make(Random.derive(2026, "bench/lora", m, n))
  const g = new Float64Array(m * PLANTED)
  const h = new Float64Array(n * PLANTED)
  for (let i = 0; i < g.length; i++) g[i] = random.normal()
  for (let i = 0; i < h.length; i++) h[i] = random.normal()
  const sigma = Array.from({ length: PLANTED }, (_, c) => 4 ** (-c / (PLANTED - 1)) / Math.sqrt(m * n))
  const a = new Float64Array(m * n)
  for (let i = 0; i < m; i++) {
    for (let c = 0; c < PLANTED; c++) {
      const gc = g[i * PLANTED + c]! * sigma[c]!
      for (let j = 0; j < n; j++) a[i * n + j] = a[i * n + j]! + gc * h[j * PLANTED + c]!
    }
  }
  // Signal ‖·‖_F ≈ √Σσ² ≈ 4.9 (in units of 1/√(mn) per factor product); noise a twentieth of it.
  let signal = 0
  for (let i = 0; i < a.length; i++) signal += a[i]! * a[i]!
  const scale = (Math.sqrt(signal) / 20) * Math.sqrt(12 / a.length)
  for (let i = 0; i < a.length; i++) a[i] = a[i]! + scale * (random.next() - 0.5)
  return a
}

const runCase = (c: Case) => {
  const a = delta(c.rows, c.cols)
  const started = performance.now()
  const result = c.target === "exact"
    ? { svd: Svd.svd(a, c.rows, c.cols), rank: 16, method: "exact" as const }
    : RandomizedSvd.truncated(a, c.rows, c.cols, c.target)
  const seconds = (performance.now() - started) / 1000
  const f = Svd.factors(result.svd, result.rank)
  const fit = Svd.reconstruction(a, f.b, f.a, c.rows, c.cols, f.rank)
  return {
    name: c.name,
    method: result.method,
    rank: result.rank,
    sketch: result.svd.s.length,
    seconds,
    relative_error: Svd.relativeError(fit),
    peak_rss_mib: process.resourceUsage().maxRSS / 1024,
    matrix_mib: (a.byteLength / 2 ** 20)
  }
}

const child = process.argv.indexOf("--case")
if (child >= 0) {
  const c = CASES.find((x) => x.name === process.argv[child + 1])!
  process.stdout.write(JSON.stringify(runCase(c)))
} else {
  const quick = process.argv.includes("--quick")
  const results = []
  for (const c of CASES.filter((x) => !quick || x.rows < 10000)) {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--case", c.name], { encoding: "utf8", maxBuffer: 1 << 20 })
    if (r.status !== 0) throw new Error(`${c.name}: ${r.stderr}`)
    const row = JSON.parse(r.stdout)
    results.push(row)
    console.log(`${row.name.padEnd(24)} ${row.method.padEnd(10)} r=${String(row.rank).padEnd(3)} k=${String(row.sketch).padEnd(4)} ${row.seconds.toFixed(2).padStart(7)} s  err ${row.relative_error.toFixed(4)}  peak RSS ${row.peak_rss_mib.toFixed(0)} MiB (ΔW ${row.matrix_mib.toFixed(0)} MiB)`)
  }
  fs.mkdirSync(path.dirname(outFile), { recursive: true })
  fs.writeFileSync(outFile, JSON.stringify({ node: process.version, cpus: (await import("node:os")).cpus().length, results }, null, 1) + "\n")
  console.log(`wrote ${outFile}`)
}
