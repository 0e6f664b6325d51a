/**
 * Training throughput: steps/s of a 784-512-512-10 ReLU MLP (batch 128, Adam 1e-3) on the MNIST
 * training split, Crucible on TF.js (the default backend, and `cpu` for a few steps) against
 * PyTorch CPU (`torch_peer.py`, /usr/bin/python3) on this machine, in the same run.
 *
 *   node bench/train/run.ts [--steps 150] [--warmup 10] [--batch 128] [--cpu-steps 4] [--no-peer] [--no-stock]
 *
 * Prints a report and writes bench/out/train.json. Both sides skip the input gradient of the
 * first layer, so they do the same matmul work per step (reported as effective GFLOP/s).
 *
 * On wasm, matMul and transpose run on the threaded GEMM of backend/gemm (as many threads as
 * the machine has; `CRUCIBLE_GEMM_THREADS=0` measures TF.js's own single-threaded XNNPACK
 * kernels, `=N` N threads). The report says how many threads ran, and (unless --no-stock) times
 * the XNNPACK kernels too, in the same run. Figures: bench/train/README.md.
 *
 * Debian's python3-torch runs on whatever `libblas.so.3` the system provides, here the
 * reference BLAS, which makes it a weak peer. When OpenBLAS is at hand — a folder holding its
 * `libblas.so.3` in CRUCIBLE_BENCH_OPENBLAS, or the `libopenblas0-pthread` package in the apt
 * cache, unpacked (not installed) into bench/out/.openblas — the peer runs a second time on it
 * (LD_LIBRARY_PATH, one thread) and both ratios are reported.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import { createRequire } from "node:module"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { Backend } from "../../packages/strategies/src/backend/Backend.ts"
import * as WasmKernels from "../../packages/strategies/src/backend/gemm/WasmKernels.ts"
import * as Batches from "../../packages/strategies/src/data/Batches.ts"
import type { Dataset } from "../../packages/strategies/src/data/Dataset.ts"
import * as Mnist from "../../packages/strategies/src/data/Mnist.ts"
import * as Init from "../../packages/strategies/src/models/Init.ts"
import * as Network from "../../packages/strategies/src/models/Network.ts"
import * as Trainer from "../../packages/strategies/src/train/Trainer.ts"
import { openBlasDir } from "../support/OpenBlas.ts"

// bench/ has no package.json: Effect is taken from @crucible/strategies, the same instance its modules use
// (TF.js is reached only through strategies' modules for the same reason).
const ROOT = path.resolve(import.meta.dirname, "..", "..")
const strategiesRequire = createRequire(path.join(ROOT, "packages", "strategies", "package.json"))
const { ConfigProvider, Effect, Layer } = (await import(pathToFileURL(strategiesRequire.resolve("effect")).href)) as typeof import("effect")

const { values: args } = parseArgs({
  options: {
    steps: { type: "string", default: "150" },
    warmup: { type: "string", default: "10" },
    batch: { type: "string", default: "128" },
    "cpu-steps": { type: "string", default: "4" },
    "no-stock": { type: "boolean", default: false },
    "no-peer": { type: "boolean", default: false }
  }
})
const STEPS = Number(args.steps)
const WARMUP = Number(args.warmup)
const BATCH = Number(args.batch)
const CPU_STEPS = Number(args["cpu-steps"])
const WIDTHS = [784, 512, 512, 10]

const matmulFlopsPerStep = (batch: number): number => {
  let forward = 0
  let inputGrads = 0
  for (let i = 0; i + 1 < WIDTHS.length; i++) {
    const mac = WIDTHS[i]! * WIDTHS[i + 1]!
    forward += 2 * batch * mac
    if (i > 0) inputGrads += 2 * batch * mac
  }
  return 2 * forward + inputGrads // forward, weight gradients, input gradients of layers 2…L
}

interface Measured {
  readonly backend: string
  readonly steps: number
  readonly seconds: number
  readonly stepsPerSecond: number
  readonly meanLoss: number
}

/** Trains `steps` timed steps after `warmup` on the active backend. */
const measure = (backend: string, network: Network.Network, data: Dataset, steps: number, warmup: number): Measured => {
  const trainer = Trainer.make(network, Init.initNetwork(network, 0), { optimizer: { type: "adam", lr: 1e-3 } })
  try {
    let epoch = 0
    let iterator = Batches.batches(data, { batchSize: BATCH, seed: 0, epoch, dropLast: true })
    const next = (): Batches.Batch => {
      let r = iterator.next()
      if (r.done === true) {
        iterator = Batches.batches(data, { batchSize: BATCH, seed: 0, epoch: ++epoch, dropLast: true })
        r = iterator.next()
      }
      return r.value as Batches.Batch
    }
    for (let i = 0; i < warmup; i++) {
      const b = next()
      trainer.step(b.x, b.y, 1e-3)
    }
    trainer.takeTotals()
    const batches = Array.from({ length: steps }, next)
    const start = performance.now()
    for (const b of batches) trainer.step(b.x, b.y, 1e-3)
    const totals = trainer.takeTotals() // reads the device: every step has finished
    const seconds = (performance.now() - start) / 1000
    return { backend, steps, seconds, stepsPerSecond: steps / seconds, meanLoss: totals.lossSum / totals.samples }
  } finally {
    trainer.dispose()
  }
}

const onBackend = (steps: number, warmup: number) =>
  Effect.gen(function* () {
    const backend = yield* Backend
    const { train } = yield* Mnist.load()
    const network = yield* Network.resolve({ type: "mlp", layers: WIDTHS })
    const before = backend.liveTensors()
    const measured = measure(backend.name, network, train, steps, warmup)
    // matMul/transpose threads of the wasm backend (backend/gemm); 1 = XNNPACK's own kernels.
    const threads = backend.name === "wasm" ? (WasmKernels.installedThreads() ?? 1) : 1
    return { measured, backend: backend.name, tfjs: backend.tfjsVersion, leaked: backend.liveTensors() - before, threads }
  })

const loadBefore = os.loadavg()[0]!
const main = await Effect.runPromise(Effect.provide(onBackend(STEPS, WARMUP), Backend.layer()))
// The same on TF.js's own single-threaded XNNPACK kernels (the figure before backend/gemm).
const stockLayer = Backend.layer("wasm").pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ CRUCIBLE_GEMM_THREADS: "0" }))))
const stock = main.backend === "wasm" && main.threads > 1 && !args["no-stock"] ? (await Effect.runPromise(Effect.provide(onBackend(STEPS, WARMUP), stockLayer))).measured : undefined
const cpu = CPU_STEPS > 0 ? (await Effect.runPromise(Effect.provide(onBackend(CPU_STEPS, 1), Backend.layer("cpu")))).measured : undefined
const ours = { backend: main.backend, tfjs: main.tfjs, main: main.measured, stock, cpu, leaked: main.leaked, threads: main.threads }
const nodeRssMb = process.resourceUsage().maxRSS / 1024

interface Peer {
  readonly steps_per_s: number
  readonly mean_loss: number
  readonly peak_rss_mb: number
  readonly threads: number
  readonly torch: string
  readonly blas: string
  readonly matmul_1024_gflops: number
}
const runPeer = (env: NodeJS.ProcessEnv = {}): Peer => {
  const script = path.join(import.meta.dirname, "torch_peer.py")
  const argv = [script, "--mnist-dir", Mnist.defaultDirectory(), "--steps", String(STEPS), "--warmup", String(WARMUP), "--batch", String(BATCH)]
  const out = execFileSync("/usr/bin/python3", argv, { encoding: "utf8", env: { ...process.env, ...env } })
  return JSON.parse(out.trim().split("\n").pop()!) as Peer
}

let peer: Peer | undefined
let openBlasPeer: Peer | undefined
if (!args["no-peer"]) {
  peer = runPeer()
  const dir = peer.blas === "openblas" ? undefined : openBlasDir(path.join(ROOT, "bench", "out"))
  if (dir !== undefined) openBlasPeer = runPeer({ LD_LIBRARY_PATH: dir, OPENBLAS_NUM_THREADS: "1" })
}

const loadAfter = os.loadavg()[0]!
const flops = matmulFlopsPerStep(BATCH)
const gflops = (stepsPerSecond: number) => (stepsPerSecond * flops) / 1e9
const row = (label: string, sps: number, extra: string) => `  ${label.padEnd(36)} ${sps.toFixed(1).padStart(8)} steps/s  ${gflops(sps).toFixed(1).padStart(6)} GFLOP/s  ${extra}`
const lines = [
  `train: MLP ${WIDTHS.join("-")}, batch ${BATCH}, Adam 1e-3, MNIST train split; ${STEPS} timed steps after ${WARMUP} warm-up`,
  row(`crucible tfjs-${ours.backend} (${ours.threads} thread${ours.threads === 1 ? "" : "s"})`, ours.main.stepsPerSecond, `mean loss ${ours.main.meanLoss.toFixed(3)}, peak RSS ${nodeRssMb.toFixed(0)} MB (whole process)`),
  ...(ours.stock === undefined ? [] : [row(`crucible tfjs-wasm, XNNPACK (1 thread)`, ours.stock.stepsPerSecond, `mean loss ${ours.stock.meanLoss.toFixed(3)}`)]),
  ...(ours.cpu === undefined ? [] : [row(`crucible tfjs-cpu`, ours.cpu.stepsPerSecond, `(${ours.cpu.steps} steps)`)]),
  ...(peer === undefined
    ? []
    : [
        row(`pytorch ${peer.torch} cpu, ${peer.blas} BLAS`, peer.steps_per_s, `mean loss ${peer.mean_loss.toFixed(3)}, peak RSS ${peer.peak_rss_mb.toFixed(0)} MB; matmul 1024³ ${peer.matmul_1024_gflops.toFixed(1)} GFLOP/s`),
        ...(openBlasPeer === undefined
          ? []
          : [row(`pytorch cpu, ${openBlasPeer.blas} BLAS, 1 thr`, openBlasPeer.steps_per_s, `mean loss ${openBlasPeer.mean_loss.toFixed(3)}, peak RSS ${openBlasPeer.peak_rss_mb.toFixed(0)} MB; matmul 1024³ ${openBlasPeer.matmul_1024_gflops.toFixed(1)} GFLOP/s`)]),
        `  ratio crucible/pytorch (installed, ${peer.blas} BLAS): ${(ours.main.stepsPerSecond / peer.steps_per_s).toFixed(2)}× (target ≥ 0.5×)`,
        ...(openBlasPeer === undefined
          ? []
          : [
              `  ratio crucible/pytorch (${openBlasPeer.blas} BLAS, 1 thread):  ${(ours.main.stepsPerSecond / openBlasPeer.steps_per_s).toFixed(2)}× (target ≥ 0.5×)`,
              ...(ours.stock === undefined ? [] : [`  ratio crucible XNNPACK/pytorch (${openBlasPeer.blas} BLAS, 1 thread): ${(ours.stock.stepsPerSecond / openBlasPeer.steps_per_s).toFixed(2)}×`])
            ])
      ])
]
lines.push(`  machine: ${os.cpus().length} cores, 1-minute load average ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after (other work on the machine skews both sides)`)
console.log(lines.join("\n"))

const report = {
  name: "train",
  date: new Date().toISOString(),
  config: { widths: WIDTHS, batch: BATCH, optimizer: "adam", lr: 1e-3, steps: STEPS, warmup: WARMUP, matmulFlopsPerStep: flops },
  crucible: { ...ours.main, backend: ours.backend, tfjs: ours.tfjs, threads: ours.threads, gflops: gflops(ours.main.stepsPerSecond), peakRssMb: nodeRssMb, leakedTensors: ours.leaked },
  crucibleXnnpack: ours.stock === undefined ? null : { ...ours.stock, gflops: gflops(ours.stock.stepsPerSecond) },
  crucibleCpu: ours.cpu === undefined ? null : { ...ours.cpu, gflops: gflops(ours.cpu.stepsPerSecond) },
  pytorch: peer === undefined ? null : { ...peer, gflops: gflops(peer.steps_per_s) },
  pytorchOpenBlas: openBlasPeer === undefined ? null : { ...openBlasPeer, gflops: gflops(openBlasPeer.steps_per_s) },
  ratio: peer === undefined ? null : ours.main.stepsPerSecond / peer.steps_per_s,
  ratioOpenBlas: openBlasPeer === undefined ? null : ours.main.stepsPerSecond / openBlasPeer.steps_per_s,
  machine: { cores: os.cpus().length, loadAverageBefore: loadBefore, loadAverageAfter: loadAfter }
}
fs.mkdirSync(path.join(ROOT, "bench", "out"), { recursive: true })
fs.writeFileSync(path.join(ROOT, "bench", "out", "train.json"), `${JSON.stringify(report, null, 2)}\n`)
