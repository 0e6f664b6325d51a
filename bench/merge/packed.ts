/**
 * Packed-dtype kernels: the fused bf16 weighted sum (`Packed.ts`: 3 bf16 inputs →
 * bf16 in the arena) in GB/s of bytes read + written, one thread and through the pool (1 and 2
 * workers), against one thread's memcpy measured in the same run;
 * the chain it replaces (DType.toFloat32 of each input, the f32 SIMD sum, DType.fromNumbers);
 * and the element rates of DType's bulk conversions now and at a given commit (default: the one
 * before the typed-array fast paths), loaded from git.
 *
 *   node bench/merge/packed.ts [--elements 67108864] [--repeats 3] [--old-dtype <commit>]
 *
 * Times are the best of `--repeats` runs after one warm-up. Writes bench/out/merge-packed.json.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { Effect, Exit, Scope } from "./effect.ts"
import * as DType from "../../packages/core/src/tensor/DType.ts"
import * as Arena from "../../packages/strategies/src/merge/kernels/Arena.ts"
import * as Packed from "../../packages/strategies/src/merge/kernels/Packed.ts"
import * as Pool from "../../packages/strategies/src/merge/kernels/Pool.ts"
import * as Simd from "../../packages/strategies/src/merge/kernels/Simd.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.join(here, "..", "..")
const { values: flags } = parseArgs({
  options: {
    elements: { type: "string", default: String(1 << 26) },
    repeats: { type: "string", default: "3" },
    "old-dtype": { type: "string", default: "b7b856f^" }
  }
})
const n = Number(flags.elements)
const repeats = Number(flags.repeats)
const GB = 1e9

const time = (fn: () => void): number => {
  fn()
  let best = Infinity
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now()
    fn()
    best = Math.min(best, (performance.now() - t0) / 1000)
  }
  return best
}

// Finite bf16 weights: random sign and mantissa, exponents of typical weights (2^-12 … 2^2).
const fillBF16 = (bytes: Uint8Array, seed: number): void => {
  const h = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2)
  let s = seed >>> 0
  for (let j = 0; j < h.length; j++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    h[j] = (s >>> 16 & 0x807f) | ((115 + ((s >>> 8) & 15)) << 7)
  }
}

const arena = Arena.make({ maxBytes: 5 * n * 2 + (1 << 24) })
const inputs = [1, 2, 3].map((seed) => {
  const x = arena.allocBytes(n * 2)!
  fillBF16(x, seed)
  return x
})
const out = arena.allocBytes(n * 2)!
const packed = Packed.make(arena.memory, arena.owns)
const coefficients = [0.5, 0.3, 0.2]

console.log(`packed kernels: ${n} elements, 3 bf16 inputs → bf16, one thread, ${os.cpus().length} CPUs, Node ${process.version}`)

const plainFrom = new Uint8Array(n * 2), plainTo = new Uint8Array(n * 2)
plainFrom.set(inputs[0]!)
const memcpyPlain = time(() => plainTo.set(plainFrom))
const memcpyArena = time(() => out.set(inputs[0]!))
const fused = time(() => packed.weightedSum(out, "BF16", inputs, "BF16", coefficients, 0, n))

// The same op through the pool, one range per worker (the memcpy figure above is one thread's).
const pooled = new Map<number, number>()
for (const workers of [1, 2]) {
  const scope = Effect.runSync(Scope.make())
  const pool = await Effect.runPromise(Scope.provide(scope)(Pool.make({ workers, arena, inlineBelow: 0 })))
  const args = { out, outDtype: "BF16", inputs, inDtype: "BF16", coefficients } as const
  const ranges = pool.split(n)
  await Effect.runPromise(pool.run("packedSum", args, ranges))
  let bestTime = Infinity
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now()
    await Effect.runPromise(pool.run("packedSum", args, ranges))
    bestTime = Math.min(bestTime, (performance.now() - t0) / 1000)
  }
  pooled.set(workers, bestTime)
  await Effect.runPromise(Scope.close(scope, Exit.void))
}

// The chain the fused kernel replaces, on a 1M-element slice scaled up (whole tensors would need
// 3 × 256 MiB of float32 copies), with the conversions DType has now.
const slice = Math.min(n, 1 << 20)
const simd = Simd.make(arena.memory, arena.owns)
const f32Out = arena.alloc(slice)!
const f32In = [0, 1, 2].map(() => arena.alloc(slice)!)
const chain = time(() => {
  for (let k = 0; k < 3; k++) f32In[k]!.set(DType.toFloat32(inputs[k]!.subarray(0, slice * 2) as Uint8Array<ArrayBuffer>, "BF16"))
  simd.weightedSum(f32Out, f32In, coefficients, 0, slice)
  out.set(DType.fromNumbers(f32Out, "BF16"))
}) * (n / slice)

// DType's bulk conversions: element rates now and at the old commit, timed alternately (best of
// `--repeats` each) so that both see the same machine. Decoding goes into one reused array
// (`decodeInto`, the loop under toFloat32/toFloat64; the old module gets it exported): a fresh
// output's first-touch page faults would otherwise be most of what is timed, for both.
type Rates = { decodeBF16: number; decodeF16: number; fromNumbersBF16: number; fromNumbersF16: number }
const conversions = (modules: ReadonlyArray<typeof DType>, m: number): Array<Rates> => {
  const bytes = new Uint8Array(m * 2)
  fillBF16(bytes, 9)
  const values = DType.toFloat32(bytes, "BF16")
  const decoded = new Float32Array(m)
  const cases: ReadonlyArray<readonly [keyof Rates, (d: typeof DType) => unknown]> = [
    ["decodeBF16", (d) => d.decodeInto(bytes, "BF16", decoded)],
    ["decodeF16", (d) => d.decodeInto(bytes, "F16", decoded)],
    ["fromNumbersBF16", (d) => d.fromNumbers(values, "BF16")],
    ["fromNumbersF16", (d) => d.fromNumbers(values, "F16")]
  ]
  const rates = modules.map(() => ({ decodeBF16: 0, decodeF16: 0, fromNumbersBF16: 0, fromNumbersF16: 0 }))
  for (const [key, run] of cases) {
    for (let r = 0; r <= repeats; r++) {
      modules.forEach((d, i) => {
        const t0 = performance.now()
        run(d)
        if (r > 0) rates[i]![key] = Math.max(rates[i]![key], m / ((performance.now() - t0) / 1000))
      })
    }
  }
  return rates
}
const conversionElements = Math.min(n, 1 << 20)
let oldModule: typeof DType | undefined
try {
  // The old module imports "effect", which does not resolve outside the packages: point it at core's copy.
  const source = execFileSync("git", ["show", `${flags["old-dtype"]}:packages/core/src/tensor/DType.ts`], { cwd: root, encoding: "utf8" })
  const effect = pathToFileURL(path.join(root, "packages/core/node_modules/effect/dist/index.js")).href
  const file = path.join(os.tmpdir(), `crucible-old-DType-${process.pid}.ts`)
  fs.writeFileSync(file, source.replace(/from "effect"/, `from "${effect}"`).replace("\nconst decodeInto =", "\nexport const decodeInto ="))
  try {
    oldModule = (await import(pathToFileURL(file).href)) as typeof DType
  } finally {
    fs.rmSync(file, { force: true })
  }
} catch (cause) {
  console.log(`old DType not loaded: ${cause instanceof Error ? cause.message : String(cause)}`)
}
const [now, old] = conversions(oldModule === undefined ? [DType] : [DType, oldModule], conversionElements)

const moved = 4 * n * 2
const rows = [
  { kernel: "memcpy (TypedArray.set, plain)", seconds: memcpyPlain, gbps: (2 * n * 2) / memcpyPlain / GB },
  { kernel: "memcpy (TypedArray.set, arena)", seconds: memcpyArena, gbps: (2 * n * 2) / memcpyArena / GB },
  { kernel: "bf16 sum, fused (Packed)", seconds: fused, gbps: moved / fused / GB },
  ...[...pooled].map(([workers, seconds]) => ({ kernel: `bf16 sum, pool packedSum, ${workers} worker(s)`, seconds, gbps: moved / seconds / GB })),
  { kernel: "bf16 sum, decode+SIMD+encode", seconds: chain, gbps: moved / chain / GB }
]
const memcpyBest = Math.max(rows[0]!.gbps, rows[1]!.gbps)
console.log("")
for (const r of rows) console.log(`${r.kernel.padEnd(42)}${(r.seconds * 1000).toFixed(1).padStart(9)} ms${r.gbps.toFixed(2).padStart(8)} GB/s${`${((r.gbps / memcpyBest) * 100).toFixed(0)}%`.padStart(6)} of memcpy`)
console.log("")
const rate = (x: number | undefined) => (x === undefined ? "-" : `${(x / 1e6).toFixed(0)} M/s`)
for (const key of ["decodeBF16", "decodeF16", "fromNumbersBF16", "fromNumbersF16"] as const) {
  console.log(`DType.${key.padEnd(18)} now ${rate(now![key]).padStart(10)}   before ${rate(old?.[key]).padStart(10)}`)
}
const report = { bench: "merge-packed", elements: n, cpus: os.cpus().length, node: process.version, rows, conversions: { elements: conversionElements, now, old } }
const outDir = path.join(here, "..", "out")
fs.mkdirSync(outDir, { recursive: true })
fs.writeFileSync(path.join(outDir, "merge-packed.json"), JSON.stringify(report, null, 2) + "\n")
