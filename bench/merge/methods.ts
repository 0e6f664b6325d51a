/**
 * The merge methods that got their pool forms last (NuSLERP, Karcher, SCE, NearSwap, Arcee
 * Fusion): the single-threaded kernel against `Parallel.*` on a pool of 1 and 2 workers, on one
 * square tensor (a base and three fine-tunes in shared memory). Checks that every pooled output
 * has the single-threaded bytes, then prints seconds (best of `--repeats`, after one warm-up).
 *
 *   node bench/merge/methods.ts [--side 2048] [--repeats 3] [--methods nuslerp,karcher,…]
 */
import { Effect, Scope } from "./effect.ts"
import * as os from "node:os"
import { parseArgs } from "node:util"
import * as ArceeFusion from "../../packages/strategies/src/merge/kernels/ArceeFusion.ts"
import * as Karcher from "../../packages/strategies/src/merge/kernels/Karcher.ts"
import * as NearSwap from "../../packages/strategies/src/merge/kernels/NearSwap.ts"
import * as NuSlerp from "../../packages/strategies/src/merge/kernels/NuSlerp.ts"
import * as Parallel from "../../packages/strategies/src/merge/kernels/Parallel.ts"
import * as Pool from "../../packages/strategies/src/merge/kernels/Pool.ts"
import * as Sce from "../../packages/strategies/src/merge/kernels/Sce.ts"

const { values: flags } = parseArgs({
  options: {
    side: { type: "string", default: "2048" },
    repeats: { type: "string", default: "3" },
    methods: { type: "string", default: "nuslerp,nuslerp-rows,karcher,sce,nearswap,arcee-fusion" }
  }
})
const side = Number(flags.side)
const repeats = Number(flags.repeats)
const shape = [side, side]
const n = side * side

const shared = (fill: (j: number) => number) => {
  const a = new Float32Array(new SharedArrayBuffer(n * 4))
  for (let j = 0; j < n; j++) a[j] = fill(j)
  return a
}
let seed = 7
const random = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0), seed / 4294967296 - 0.5)
const base = shared(() => random() * 0.1)
const models = [0, 1, 2].map(() => shared((j) => base[j]! + random() * 0.01))
const out = shared(() => 0)

const best = async (run: () => unknown): Promise<number> => {
  await run()
  let fastest = Infinity
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now()
    await run()
    fastest = Math.min(fastest, (performance.now() - t0) / 1000)
  }
  return fastest
}

type Method = { readonly one: () => Float32Array; readonly pooled: (pool: Pool.Pool) => Effect.Effect<unknown, unknown> }
const karcherParams = { maxIter: 10, tol: 1e-9 }
const methods: Record<string, Method> = {
  nuslerp: {
    one: () => ((o) => (NuSlerp.apply({ t: 0.3, flatten: true, rowWise: false }, shape, o, models[0]!, models[1]!, base), o))(new Float32Array(n)),
    pooled: (pool) => Parallel.nuSlerp(pool, { t: 0.3, flatten: true, rowWise: false }, shape, out, models[0]!, models[1]!, base)
  },
  "nuslerp-rows": {
    one: () => ((o) => (NuSlerp.apply({ t: 0.3, flatten: false, rowWise: false }, shape, o, models[0]!, models[1]!, base), o))(new Float32Array(n)),
    pooled: (pool) => Parallel.nuSlerp(pool, { t: 0.3, flatten: false, rowWise: false }, shape, out, models[0]!, models[1]!, base)
  },
  karcher: { one: () => Karcher.apply(karcherParams, models).out, pooled: (pool) => Parallel.karcher(pool, karcherParams, models, out) },
  sce: { one: () => Sce.apply(0.5, base, models).out, pooled: (pool) => Parallel.sce(pool, 0.5, base, models, out) },
  nearswap: {
    one: () => ((o) => (NearSwap.apply(0.005, o, base, models[0]!), o))(new Float32Array(n)),
    pooled: (pool) => Parallel.nearSwap(pool, 0.005, out, base, models[0]!)
  },
  "arcee-fusion": { one: () => ArceeFusion.apply(shape, base, models[0]!).out, pooled: (pool) => Parallel.arceeFusion(pool, shape, base, models[0]!, out) }
}

const scope = Effect.runSync(Scope.make())
const pools = await Promise.all([1, 2].map((workers) => Effect.runPromise(Scope.provide(scope)(Pool.make({ workers, inlineBelow: 0 })))))
console.log(`merge methods: ${side}×${side} float32 (${((n * 4) / 2 ** 20).toFixed(0)} MiB per tensor), 3 models; ${os.cpus().length} CPUs, Node ${process.version}; best of ${repeats}`)
console.log("method".padEnd(14) + "1 thread".padStart(10) + "pool 1".padStart(10) + "pool 2".padStart(10) + "speed-up".padStart(10))
for (const name of flags.methods.split(",")) {
  const method = methods[name]
  if (method === undefined) throw new Error(`unknown method ${name}: one of ${Object.keys(methods).join(", ")}`)
  const want = method.one()
  const one = await best(method.one)
  const times: Array<number> = []
  for (const pool of pools) {
    times.push(await best(() => Effect.runPromise(method.pooled(pool))))
    const a = new Uint32Array(want.buffer), b = new Uint32Array(out.buffer)
    for (let j = 0; j < n; j++) if (a[j] !== b[j] && !(Number.isNaN(want[j]) && Number.isNaN(out[j]))) throw new Error(`${name} on ${pool.workers} workers: element ${j} differs`)
  }
  console.log(name.padEnd(14) + one.toFixed(3).padStart(10) + times[0]!.toFixed(3).padStart(10) + times[1]!.toFixed(3).padStart(10) + `${(one / times[1]!).toFixed(2)}×`.padStart(10))
}
await Effect.runPromise(Scope.close(scope, Effect.void as never))
