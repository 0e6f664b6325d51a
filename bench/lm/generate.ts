/**
 * Generation speed with and without the key/value cache: greedy continuations by the tiny LLaMA of
 * examples/lm-merge (tiny-llama/config.json, ~1.05M parameters, 256 positions; weights drawn by
 * LmWeights.init — speed does not depend on them) of a Brown-like prompt, on TF.js wasm with the
 * threaded GEMM:
 *
 * - cached: `lm/Generate.ts` (one prefill, then one position's pass per token over the cache);
 * - recompute: what Generate did before the cache, the full forward pass (`Transformer.logits`)
 *   over the whole window for every token.
 *
 * Both must give the same ids (checked). `--new` beyond the positions left after the prompt makes
 * the window slide, where the cached path re-prefills the window for every token (as the
 * recompute does).
 *
 *   node bench/lm/generate.ts [--new 200] [--runs 2]
 *
 * Prints tokens/s of each (the best of `--runs`, after a warm-up of 8 tokens) and writes
 * bench/out/lm-generate.json.
 */
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { Backend } from "../../packages/strategies/src/backend/Backend.ts"
import * as WasmKernels from "../../packages/strategies/src/backend/gemm/WasmKernels.ts"
import * as Generate from "../../packages/strategies/src/lm/Generate.ts"
import * as LmConfig from "../../packages/strategies/src/lm/LmConfig.ts"
import * as LmWeights from "../../packages/strategies/src/lm/LmWeights.ts"
import * as Transformer from "../../packages/strategies/src/lm/Transformer.ts"
import * as TextTokenizer from "../../packages/strategies/src/text/TextTokenizer.ts"
// The reference the tests check Generate against: the same loop is timed here.
import { recomputeGenerate } from "../../packages/strategies/test/lm/RecomputeGenerate.ts"

// bench/ has no package.json: Effect and TF.js are taken from @crucible/strategies, the same instance its modules use.
const ROOT = path.resolve(import.meta.dirname, "..", "..")
const strategiesRequire = createRequire(path.join(ROOT, "packages", "strategies", "package.json"))
const { Effect } = (await import(pathToFileURL(strategiesRequire.resolve("effect")).href)) as typeof import("effect")

const { values: args } = parseArgs({ options: { new: { type: "string", default: "200" }, runs: { type: "string", default: "2" } } })
const NEW = Number(args.new)
const RUNS = Number(args.runs)
const MODEL = path.join(ROOT, "examples", "lm-merge", "tiny-llama")
const OUT = path.join(ROOT, "bench", "out")
const PROMPT = "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election produced no evidence that any irregularities took place."


const seconds = async <A>(f: () => Promise<A>): Promise<{ readonly value: A; readonly s: number }> => {
  const t0 = performance.now()
  const value = await f()
  return { value, s: (performance.now() - t0) / 1000 }
}

const main = Effect.gen(function* () {
  const config = yield* LmConfig.read(MODEL)
  const tokenizer = yield* TextTokenizer.read(MODEL)
  const threads = WasmKernels.installedThreads() ?? 1
  const device = Transformer.upload(config, LmWeights.init(config, 0), { trainable: false })
  const prompt = tokenizer.encode(PROMPT)
  const options: Generate.GenerateOptions = { maxNewTokens: NEW, temperature: 0, seed: 0 }
  const cachedRun = () => Effect.runPromise(Generate.generate(device, prompt, options))
  const best = { cached: Infinity, recompute: Infinity }
  let ids: { cached: Array<number>; recompute: Array<number> } = { cached: [], recompute: [] }
  yield* Effect.promise(async () => {
    await Effect.runPromise(Generate.generate(device, prompt, { ...options, maxNewTokens: 8 }))
    await recomputeGenerate(device, prompt, { ...options, maxNewTokens: 8 })
    for (let r = 0; r < RUNS; r++) {
      const a = await seconds(cachedRun)
      const b = await seconds(() => recomputeGenerate(device, prompt, options))
      best.cached = Math.min(best.cached, a.s)
      best.recompute = Math.min(best.recompute, b.s)
      ids = { cached: Array.from(a.value), recompute: b.value }
    }
  })
  device.dispose()
  return { config, threads, prompt, best, ids }
}).pipe(Effect.provide(Backend.layer("wasm")))

const loadBefore = os.loadavg()[0]!
const { config, threads, prompt, best, ids } = await Effect.runPromise(main)
const loadAfter = os.loadavg()[0]!
const same = ids.cached.length === ids.recompute.length && ids.cached.every((t, i) => t === ids.recompute[i])
const slides = prompt.length + NEW - 1 > config.maxPositions
const lines = [
  `lm generate: ${config.modelType} ${LmWeights.parameterCount(config)} parameters, ${config.maxPositions} positions; greedy, prompt ${prompt.length} tokens + ${NEW} new${slides ? " (the window slides)" : ""}; wasm, GEMM ${threads} threads; best of ${RUNS}`,
  `  kv cache   ${(NEW / best.cached).toFixed(1).padStart(8)} tokens/s  (${best.cached.toFixed(2)} s)`,
  `  recompute  ${(NEW / best.recompute).toFixed(1).padStart(8)} tokens/s  (${best.recompute.toFixed(2)} s)`,
  `  speed-up ${(best.recompute / best.cached).toFixed(2)}×; same ids: ${same}`,
  `  machine: ${os.cpus().length} cores, 1-minute load average ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after`
]
console.log(lines.join("\n"))
fs.mkdirSync(OUT, { recursive: true })
const report = {
  name: "lm-generate",
  date: new Date().toISOString(),
  config: { model: MODEL.slice(ROOT.length + 1), parameters: LmWeights.parameterCount(config), promptTokens: prompt.length, newTokens: NEW, runs: RUNS, threads },
  cachedSeconds: best.cached,
  recomputeSeconds: best.recompute,
  sameIds: same,
  machine: { cores: os.cpus().length, loadAverageBefore: loadBefore, loadAverageAfter: loadAfter }
}
fs.writeFileSync(path.join(OUT, "lm-generate.json"), `${JSON.stringify(report, null, 2)}\n`)
if (!same) {
  console.error("the cached and recomputed continuations differ")
  process.exit(1)
}
