/// <reference types="@webgpu/types" />
/**
 * Training steps/s of bench/train's MLP (784-512-512-10, batch 128, Adam 1e-3) on TF.js's `webgpu`
 * backend against `wasm`, on synthetic MNIST-shaped data (the kit carries no MNIST: steps/s does
 * not depend on the values). Both backends start from the same initial parameters and see the same
 * batches, so the loss of the first step (a forward pass only) must agree.
 */
import { Effect } from "../merge/effect.ts"
import { Backend } from "../../packages/strategies/src/backend/Backend.ts"
import * as Batches from "../../packages/strategies/src/data/Batches.ts"
import type { Dataset } from "../../packages/strategies/src/data/Dataset.ts"
import type * as Gpu from "../../packages/strategies/src/gpu/Gpu.ts"
import * as Init from "../../packages/strategies/src/models/Init.ts"
import * as Network from "../../packages/strategies/src/models/Network.ts"
import * as Trainer from "../../packages/strategies/src/train/Trainer.ts"
import { loadWebGpuBackend, tf } from "./tf.ts"

export const WIDTHS = [784, 512, 512, 10]
export const BATCH = 128

/** Matmul FLOPs of a step: forward, weight gradients, input gradients of layers 2…L (as bench/train). */
export const flopsPerStep = (batch: number): number => {
  let forward = 0, inputGrads = 0
  for (let i = 0; i + 1 < WIDTHS.length; i++) {
    forward += 2 * batch * WIDTHS[i]! * WIDTHS[i + 1]!
    if (i > 0) inputGrads += 2 * batch * WIDTHS[i]! * WIDTHS[i + 1]!
  }
  return 2 * forward + inputGrads
}

export interface TrainFigures {
  readonly backend: string
  readonly steps: number
  readonly seconds: number
  readonly stepsPerSecond: number
  readonly gflops: number
  readonly firstLoss: number
  readonly meanLoss: number
}

const synthetic = (count: number): Dataset => {
  const x = new Float32Array(count * 784)
  const y = new Int32Array(count)
  let s = 12345
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32
  for (let i = 0; i < x.length; i++) x[i] = next()
  for (let i = 0; i < count; i++) y[i] = Math.floor(next() * 10)
  return { name: "synthetic/mnist-shaped", shape: [1, 28, 28], count, x, y, classes: 10 }
}

/** The `webgpu` backend on `gpu`'s device: Backend.ts's when it has one, else registered here. */
const useWebGpu = (gpu: Gpu.GpuHandle): Effect.Effect<string, unknown> =>
  Effect.provide(Effect.map(Effect.gen(function* () { return yield* Backend }), (b) => `Backend.ts (${b.name}${b.gpu === undefined || b.gpu.device === gpu.device ? "" : ", on a second device"})`), Backend.layer("webgpu")).pipe(
    Effect.catch(() =>
      Effect.tryPromise(async () => {
        const module = (await loadWebGpuBackend()) as { WebGPUBackend: new (device: GPUDevice, info?: GPUAdapterInfo) => tf.KernelBackend }
        if (tf.findBackendFactory("webgpu") !== null) tf.removeBackend("webgpu")
        tf.registerBackend("webgpu", () => new module.WebGPUBackend(gpu.device, gpu.adapter.info))
        if (!(await tf.setBackend("webgpu"))) throw new Error("tf.setBackend('webgpu') returned false")
        await tf.ready()
        return "registered by the bench on Gpu.acquire()'s device (Backend.ts has no webgpu yet)"
      })
    )
  )

// webgpu cannot read device memory synchronously in Node: `fetch` (Trainer, issue 17) copies the
// sums, parameters and optimizer slots to the host first; the timed span ends after it.
const fetched = async (trainer: Trainer.Trainer): Promise<Trainer.Totals> => {
  await (trainer as { fetch?: () => Promise<void> }).fetch?.()
  return trainer.takeTotals()
}

const measure = async (network: Network.Network, data: Dataset, steps: number, warmup: number): Promise<Omit<TrainFigures, "backend">> => {
  const trainer = Trainer.make(network, Init.initNetwork(network, 0), { optimizer: { type: "adam", lr: 1e-3 } })
  try {
    const all = [...Batches.batches(data, { batchSize: BATCH, seed: 0, epoch: 0, dropLast: true })]
    const batch = (i: number) => all[i % all.length]!
    trainer.step(batch(0).x, batch(0).y, 1e-3)
    const first = await fetched(trainer)
    for (let i = 1; i <= warmup; i++) trainer.step(batch(i).x, batch(i).y, 1e-3)
    await fetched(trainer)
    const start = performance.now()
    for (let i = 0; i < steps; i++) trainer.step(batch(warmup + 1 + i).x, batch(warmup + 1 + i).y, 1e-3)
    const totals = await fetched(trainer) // reads the device: every step has finished
    const seconds = (performance.now() - start) / 1000
    return {
      steps, seconds, stepsPerSecond: steps / seconds, gflops: (steps / seconds) * flopsPerStep(BATCH) / 1e9,
      firstLoss: first.lossSum / first.samples, meanLoss: totals.lossSum / totals.samples
    }
  } finally {
    trainer.dispose()
  }
}

/** Trains on wasm, then on webgpu; returns both and how webgpu was set up. */
export const trainBench = (gpu: Gpu.GpuHandle, options: { readonly steps: number; readonly wasmSteps: number; readonly warmup: number }) =>
  Effect.gen(function* () {
    const network = yield* Network.resolve({ type: "mlp", layers: WIDTHS })
    const data = synthetic(BATCH * 32)
    yield* Effect.provide(Effect.gen(function* () { return yield* Backend }), Backend.layer("wasm"))
    const wasm: TrainFigures = { backend: "wasm", ...(yield* Effect.promise(() => measure(network, data, options.wasmSteps, options.warmup))) }
    const how = yield* useWebGpu(gpu)
    const webgpu: TrainFigures = { backend: "webgpu", ...(yield* Effect.promise(() => measure(network, data, options.steps, options.warmup))) }
    // The first step's loss is a forward pass from the same parameters on the same batch: float32
    // matmuls of length ≤ 784 summed in different orders agree to ~1e-6 relative; 1e-4 leaves room
    // for a GPU's reduced-precision exp/log in the softmax.
    const firstLossAgrees = Math.abs(webgpu.firstLoss - wasm.firstLoss) <= 1e-4 * Math.abs(wasm.firstLoss)
    return { wasm, webgpu, how, firstLossAgrees, speedup: webgpu.stepsPerSecond / wasm.stepsPerSecond }
  })
