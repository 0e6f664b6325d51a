/**
 * Language-model training throughput: tokens/s of training the tiny LLaMA of examples/lm-merge
 * (tiny-llama/config.json: 4 layers, hidden 128, 4 heads / 2 kv heads, SwiGLU 384, vocabulary
 * 2048, tied; ~1.05M parameters) on Brown's train split (packed by text/Packing.ts with the
 * example's tokenizer), sequences of 128, batch 16, AdamW 3e-3 — Crucible's lm/LmTrain.ts on
 * TF.js wasm, once with the threaded GEMM of backend/gemm and once with TF.js's own kernels
 * (`CRUCIBLE_GEMM_THREADS=0`), against the same model in plain PyTorch (`torch_peer.py`, float32,
 * one thread and all threads; on OpenBLAS when it is at hand, as bench/train does), in one run.
 *
 *   node bench/lm/run.ts [--steps 20] [--warmup 3] [--batch 16] [--seq 128] [--no-peer]
 *
 * Both sides train on the same blocks (written to bench/out/lm-blocks.bin for the peer), not in the
 * same order (LmTrain draws its own seeded order; throughput does not depend on it). Prints a
 * report and writes bench/out/lm.json.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { Backend } from "../../packages/strategies/src/backend/Backend.ts"
import * as WasmKernels from "../../packages/strategies/src/backend/gemm/WasmKernels.ts"
import * as LmConfig from "../../packages/strategies/src/lm/LmConfig.ts"
import * as LmTrain from "../../packages/strategies/src/lm/LmTrain.ts"
import * as LmWeights from "../../packages/strategies/src/lm/LmWeights.ts"
import * as Packing from "../../packages/strategies/src/text/Packing.ts"
import * as TextTokenizer from "../../packages/strategies/src/text/TextTokenizer.ts"
import { openBlasDir } from "../support/OpenBlas.ts"

// bench/ has no package.json: Effect is taken from @crucible/strategies, the same instance its modules use.
const ROOT = path.resolve(import.meta.dirname, "..", "..")
const strategiesRequire = createRequire(path.join(ROOT, "packages", "strategies", "package.json"))
const { ConfigProvider, Effect, Layer } = (await import(pathToFileURL(strategiesRequire.resolve("effect")).href)) as typeof import("effect")

const { values: args } = parseArgs({
  options: {
    steps: { type: "string", default: "20" },
    warmup: { type: "string", default: "3" },
    batch: { type: "string", default: "16" },
    seq: { type: "string", default: "128" },
    "no-peer": { type: "boolean", default: false }
  }
})
const STEPS = Number(args.steps)
const WARMUP = Number(args.warmup)
const BATCH = Number(args.batch)
const SEQ = Number(args.seq)
const MODEL = path.join(ROOT, "examples", "lm-merge", "tiny-llama")
const OUT = path.join(ROOT, "bench", "out")

const setup = Effect.gen(function* () {
  const config = yield* LmConfig.read(MODEL)
  const tokenizer = yield* TextTokenizer.read(MODEL)
  // 40 blocks per genre (600 in all): enough distinct batches, quick to tokenize.
  const blocks = yield* Packing.load("brown", "train", undefined, tokenizer, SEQ, (p) => p, { maxBlocksPerGroup: 40 })
  return { config, blocks }
})
const { config, blocks } = await Effect.runPromise(setup)
fs.mkdirSync(OUT, { recursive: true })
const blocksFile = path.join(OUT, "lm-blocks.bin")
fs.writeFileSync(blocksFile, new Uint8Array(blocks.tokens.buffer, blocks.tokens.byteOffset, blocks.tokens.byteLength))

interface Measured {
  readonly label: string
  readonly threads: number
  readonly tokensPerSecond: number
  readonly stepsPerSecond: number
  readonly meanLoss: number
}

/** Trains WARMUP + STEPS steps, logging every step; tokens/s over the steps after the warm-up. */
const measure = (label: string, env: Record<string, string>) =>
  Effect.gen(function* () {
    const backend = yield* Backend
    const threads = backend.name === "wasm" ? (WasmKernels.installedThreads() ?? 1) : 1
    const seconds: Array<number> = []
    const losses: Array<number> = []
    yield* LmTrain.train(
      config,
      LmWeights.init(config, 0),
      blocks,
      {
        steps: WARMUP + STEPS,
        batchSize: BATCH,
        seed: 0,
        optimizer: { type: "adamw", lr: 3e-3, weightDecay: 0.01 },
        schedule: { type: "constant" },
        checkpointEvery: WARMUP + STEPS,
        logEvery: 1
      },
      {
        onLog: (report) =>
          Effect.sync(() => {
            if (report.step <= WARMUP) return
            seconds.push((BATCH * SEQ) / report.tokensPerSecond)
            losses.push(report.loss)
          })
      }
    )
    const total = seconds.reduce((a, b) => a + b, 0)
    const measured: Measured = {
      label,
      threads,
      tokensPerSecond: (STEPS * BATCH * SEQ) / total,
      stepsPerSecond: STEPS / total,
      meanLoss: losses.reduce((a, b) => a + b, 0) / losses.length
    }
    return measured
  }).pipe(Effect.provide(Backend.layer("wasm").pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(env))))))

const loadBefore = os.loadavg()[0]!
const gemm = await Effect.runPromise(measure("crucible tfjs-wasm, gemm", {}))
const stock = await Effect.runPromise(measure("crucible tfjs-wasm, XNNPACK", { CRUCIBLE_GEMM_THREADS: "0" }))
const nodeRssMb = process.resourceUsage().maxRSS / 1024

interface Peer {
  readonly tokens_per_s: number
  readonly steps_per_s: number
  readonly mean_loss: number
  readonly threads: number
  readonly params: number
  readonly torch: string
  readonly blas: string
  readonly peak_rss_mb: number
}
const runPeer = (threads: number): Peer => {
  const dir = openBlasDir(OUT)
  const argv = [path.join(import.meta.dirname, "torch_peer.py"), "--config", path.join(MODEL, "config.json"), "--blocks", blocksFile]
  argv.push("--seq", String(SEQ), "--batch", String(BATCH), "--steps", String(STEPS), "--warmup", String(WARMUP), "--threads", String(threads))
  const env = { ...process.env, ...(dir === undefined ? {} : { LD_LIBRARY_PATH: dir, OPENBLAS_NUM_THREADS: String(threads) }) }
  const out = execFileSync("/usr/bin/python3", argv, { encoding: "utf8", env })
  return JSON.parse(out.trim().split("\n").pop()!) as Peer
}
const peers = args["no-peer"] ? [] : [runPeer(1), ...(os.cpus().length > 1 ? [runPeer(os.cpus().length)] : [])]
const loadAfter = os.loadavg()[0]!

const row = (label: string, tps: number, extra: string) => `  ${label.padEnd(40)} ${tps.toFixed(0).padStart(7)} tokens/s  ${extra}`
const lines = [
  `lm: ${config.modelType} ${LmWeights.parameterCount(config)} parameters (${MODEL.slice(ROOT.length + 1)}), seq ${SEQ}, batch ${BATCH}, AdamW 3e-3, ${blocks.count} Brown train blocks; ${STEPS} timed steps after ${WARMUP} warm-up`,
  row(`${gemm.label} (${gemm.threads} threads)`, gemm.tokensPerSecond, `${gemm.stepsPerSecond.toFixed(2)} steps/s, mean loss ${gemm.meanLoss.toFixed(3)}`),
  row(`${stock.label} (1 thread)`, stock.tokensPerSecond, `${stock.stepsPerSecond.toFixed(2)} steps/s, mean loss ${stock.meanLoss.toFixed(3)}; peak RSS ${nodeRssMb.toFixed(0)} MB (whole process)`),
  ...peers.map((p) => row(`pytorch ${p.torch}, ${p.blas} BLAS, ${p.threads} thread${p.threads === 1 ? "" : "s"}`, p.tokens_per_s, `${p.steps_per_s.toFixed(2)} steps/s, mean loss ${p.mean_loss.toFixed(3)}, ${p.params} parameters, peak RSS ${p.peak_rss_mb.toFixed(0)} MB`)),
  ...peers.map((p) => `  ratio crucible gemm / pytorch ${p.threads} thread${p.threads === 1 ? "" : "s"}: ${(gemm.tokensPerSecond / p.tokens_per_s).toFixed(2)}×`),
  `  machine: ${os.cpus().length} cores, 1-minute load average ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after (other work on the machine skews both sides)`
]
console.log(lines.join("\n"))

const report = {
  name: "lm",
  date: new Date().toISOString(),
  config: { model: MODEL.slice(ROOT.length + 1), parameters: LmWeights.parameterCount(config), seqLen: SEQ, batch: BATCH, steps: STEPS, warmup: WARMUP, blocks: blocks.count },
  crucible: { gemm, stock, peakRssMb: nodeRssMb },
  pytorch: peers,
  machine: { cores: os.cpus().length, loadAverageBefore: loadBefore, loadAverageAfter: loadAfter }
}
fs.writeFileSync(path.join(OUT, "lm.json"), `${JSON.stringify(report, null, 2)}\n`)
