/**
 * The GPU bench (issue 17): on the WebGPU device (Dawn; a GPU's Vulkan driver, or lavapipe here)
 * (a) the merge weighted sum of 4 × N elements, f32 and bf16, with merge/linear's kernel
 * (strategies' `merge/gpu/WeightedSum.ts`), in GB/s against the device's copy bandwidth and the
 * CPU path, the dispatch alone and end to end (`merge.ts`); TIES end to end through the
 * task-arithmetic and range-wise kernels, with the buffer pool's counters (`ties.ts`); (b) steps/s of bench/train's MLP on TF.js `webgpu`
 * against `wasm` (`train.ts`). Targets on a real GPU: merge ≥ 50% of copy bandwidth, training ≥ 10×
 * wasm. On a fallback adapter (lavapipe, Mesa's CPU driver) only the correctness checks count.
 *
 *   node bench/gpu/run.ts [--size 16777216] [--steps 20] [--wasm-steps 20] [--warmup 3]
 *                         [--repeats 3] [--batch 8] [--ties-size 1048576] [--no-train] [--out bench/out/gpu.json]
 *
 * Exits 0 with a printed reason when no WebGPU device can be had (so `npm run bench` still runs the
 * others), 1 when a correctness check fails. scripts/gpu-kit.sh bundles this file for
 * scripts/gpu-check.sh, which runs it on a GPU machine.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parseArgs } from "node:util"
import { Effect } from "../merge/effect.ts"
import { Backend } from "../../packages/strategies/src/backend/Backend.ts"
import * as Gpu from "../../packages/strategies/src/gpu/Gpu.ts"
import { type MergeFigures, INPUTS, mergeBench } from "./merge.ts"
import { tiesBench } from "./ties.ts"
import { BATCH, trainBench, WIDTHS } from "./train.ts"

const { values: args } = parseArgs({
  options: {
    size: { type: "string", default: String(1 << 24) },
    steps: { type: "string", default: "20" },
    "wasm-steps": { type: "string", default: "20" },
    warmup: { type: "string", default: "3" },
    repeats: { type: "string", default: "3" },
    batch: { type: "string", default: "8" },
    "ties-size": { type: "string", default: String(1 << 20) },
    "no-train": { type: "boolean", default: false },
    out: { type: "string", default: path.join(import.meta.dirname, "..", "out", "gpu.json") }
  }
})

const write = (report: object): void => {
  fs.mkdirSync(path.dirname(args.out), { recursive: true })
  fs.writeFileSync(args.out, `${JSON.stringify(report, null, 2)}\n`)
  console.log(`wrote ${args.out}`)
}

// The device: Backend.ts's webgpu device when it has one (the one TF.js and the runner use), else Gpu.acquire's.
const acquired = await Effect.runPromise(
  Effect.provide(Effect.gen(function* () { return (yield* Backend).gpu }), Backend.layer("webgpu")).pipe(
    Effect.catch(() => Effect.succeed(undefined)),
    Effect.flatMap((gpu) => (gpu === undefined ? Gpu.acquire() : Effect.succeed(gpu))),
    Effect.result
  )
)
if (acquired._tag === "Failure") {
  const reason = `${acquired.failure.message}${Gpu.unavailable() === undefined ? "" : ` (${Gpu.unavailable()})`}`
  console.log(`gpu: skipped, no WebGPU device: ${reason}`)
  write({ name: "gpu", date: new Date().toISOString(), skipped: reason })
  process.exit(0)
}
const gpu = acquired.success
const info = gpu.info
const software = info.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(`${info.device} ${info.description}`)
const mark = software ? "  [lavapipe (CPU): not a GPU figure]" : ""
console.log(`gpu: adapter ${info.vendor} ${info.architecture} "${info.device}" (${info.description}), fallback ${info.isFallbackAdapter}, maxStorageBufferBindingSize ${(info.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB, maxBufferSize ${(info.maxBufferSize / 2 ** 30).toFixed(1)} GiB${info.driverFiles === undefined ? "" : `, VK_DRIVER_FILES ${info.driverFiles}`}`)
console.log(`  machine: ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? "?"}), Node ${process.version}, load ${os.loadavg()[0]!.toFixed(2)}`)

// (a) merge: the size is cut to what one storage binding holds (the kernel binds the 4 inputs together).
const merges: Array<MergeFigures> = []
for (const dtype of ["F32", "BF16"] as const) {
  const per = dtype === "F32" ? 4 : 2
  const elements = Math.min(Number(args.size), Math.floor(info.maxStorageBufferBindingSize / (INPUTS * per)))
  const m = await mergeBench(gpu.device, { elements, dtype, repeats: Number(args.repeats), batch: Number(args.batch) })
  merges.push(m)
  console.log(
    `merge ${dtype}: ${INPUTS} × ${m.elements} → 1, ${(m.bytesMoved / 1e6).toFixed(0)} MB moved: dispatch ${m.gpuGBps.toFixed(2)} GB/s (${(m.gpuSeconds * 1e3).toFixed(2)} ms) = ${(100 * m.ofCopy).toFixed(0)}% of copy ${m.copyGBps.toFixed(2)} GB/s (target ≥ 50%); end to end ${m.endToEndGBps.toFixed(2)} GB/s (${(m.endToEndSeconds * 1e3).toFixed(1)} ms); CPU 1 thread ${m.cpuGBps.toFixed(2)} GB/s → dispatch ${m.gpuOverCpu.toFixed(2)}×, end to end ${m.endToEndOverCpu.toFixed(2)}× CPU${mark}`
  )
  console.log(`  check of the float32 sums against the CPU's: ${m.ok ? "ok" : "FAILED"} (${m.mismatches} of ${m.elements} differ; max |Δ|/Σ|cx| ${m.maxRelative.toExponential(2)}, WeightedSum.bound ${(6 * 2 ** -24).toExponential(2)})`)
}

// (a′) TIES of 3 models end to end on the task-arithmetic kernels (histograms, cuts, output pass, read-backs).
const ties = await tiesBench(gpu, Number(args["ties-size"]), Number(args.repeats))
console.log(
  `ties: ${ties.models} models × ${ties.n}: gpu/TaskArithmetic.merge ${ties.tiesMs.toFixed(1)} ms, range-wise prepare + apply (bf16) ${ties.rangeWiseMs.toFixed(1)} ms (best of ${args.repeats}); buffers created ${ties.pool?.created ?? "?"}, reused ${ties.pool?.reused ?? "?"}; selectors = the CPU's: ${ties.check}${mark}`
)

// (b) training.
let train: Awaited<ReturnType<typeof runTrain>> | undefined
async function runTrain() {
  return Effect.runPromise(trainBench(gpu, { steps: Number(args.steps), wasmSteps: Number(args["wasm-steps"]), warmup: Number(args.warmup) }))
}
if (!args["no-train"]) {
  train = await runTrain()
  const row = (t: typeof train.wasm) => `${t.stepsPerSecond.toFixed(2)} steps/s (${t.gflops.toFixed(2)} GFLOP/s, ${t.steps} steps in ${t.seconds.toFixed(1)} s, first loss ${t.firstLoss.toFixed(5)}, mean loss ${t.meanLoss.toFixed(4)})`
  console.log(`train: MLP ${WIDTHS.join("-")}, batch ${BATCH}, Adam 1e-3, synthetic MNIST-shaped data`)
  console.log(`  webgpu: ${row(train.webgpu)}${mark}\n  wasm:   ${row(train.wasm)}`)
  console.log(`  webgpu/wasm ${train.speedup.toFixed(2)}× (target ≥ 10×)${mark}; webgpu set up by ${train.how}; first-step loss ${train.firstLossAgrees ? "agrees" : "DIFFERS"} (≤ 1e-4 relative)`)
}

const ok = merges.every((m) => m.ok) && ties.check === "ok" && (train === undefined || train.firstLossAgrees)
write({
  name: "gpu",
  date: new Date().toISOString(),
  adapter: info,
  software,
  note: software ? "lavapipe (CPU): not a GPU figure; only the correctness checks count" : "a GPU adapter",
  merge: { kernel: "packages/strategies/src/merge/gpu/WeightedSum.ts (merge/linear's)", inputs: INPUTS, results: merges },
  ties,
  train: train ?? null,
  targets: { mergeOfCopy: 0.5, trainSpeedup: 10 },
  ok,
  machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, loadAverage: os.loadavg()[0] }
})
gpu.device.destroy()
if (!ok) console.log("gpu: a correctness check FAILED")
process.exit(ok ? 0 : 1)
