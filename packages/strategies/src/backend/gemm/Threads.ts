/**
 * The GEMM's threads: worker threads (node:worker_threads) and the calling thread running the
 * tasks of a table on one shared WebAssembly memory, synchronously for the caller (TF.js kernels
 * are synchronous: the caller takes tasks too, then `Atomics.wait`s for the rest, which Node
 * allows on its main thread).
 *
 * Memory layout: a control block (counters, then a table of `MAX_TASKS` rows of `ROW` int32s)
 * followed by the data region the caller lays out per call (`data(bytes)` grows the memory; a
 * grow never moves it, and the workers' instances see it).
 *
 * Dispatch: the caller writes the table and the task count, sets the claim word to
 * `generation << 16 | 0` and bumps the generation word, waking the workers. A thread claims task
 * t by compare-and-swapping the claim word from `g << 16 | t` to `g << 16 | t + 1`, so a thread
 * still holding an older generation can never claim a task of the new table (its swap fails).
 *
 * Workers are started from source (`new Worker(code, { eval: true })`, the code built from
 * {@link runTask} and {@link work} below, which are self-contained for that reason), so no worker
 * file has to exist beside the CLI bundle. The compiled module is posted to them.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { Worker } from "node:worker_threads"
import * as Kernel from "./Kernel.ts"

/** Control words (int32 indices). */
const GEN = 0, CLAIM = 1, COUNT = 2, DONE = 3, QUIT = 4, FAILED = 5
/** Int32s per task row, and where the table starts (int32 index). @category constants */
export const ROW = 16, TABLE = 64
/** Most tasks in one dispatch. @category constants */
export const MAX_TASKS = 4096
/** Bytes before the data region. @category constants */
export const CONTROL_BYTES = (TABLE + MAX_TASKS * ROW) * 4
/** Depth of the k-chunks of `block` (cache blocking: a panel of B, 8 × KC floats, stays in L1). @category constants */
export const KC = 256

/** Task kinds (first int of a row). @category constants */
export const PACK = 1, GEMM = 2, TRANSPOSE = 3

const PAGE = 65536

/** @category models */
export interface Threads {
  /** Threads that run tasks: the workers and the caller. */
  readonly threads: number
  /** Whether the micro-kernel uses relaxed SIMD's fused multiply-add. */
  readonly fma: boolean
  readonly memory: WebAssembly.Memory
  /** The kernel on this thread. */
  readonly kernel: Kernel.Exports
  /** Makes the data region at least `bytes` long; returns its byte offset. */
  readonly data: (bytes: number) => number
  /** Runs `count` tasks already written in `table()` rows; returns when all are done. */
  readonly run: (count: number) => void
  /** The task table (rows of `ROW` int32s), a view of the current memory. */
  readonly table: () => Int32Array
  /** Stops the workers. */
  readonly close: () => Promise<void>
}

/**
 * Runs task row `at` (an int32 index into `ctl`'s buffer). Self-contained: its source is part of
 * the workers' code.
 *
 * PACK row: [1, src, outer, inner, dst, lanes, count, width, step, srcPanel, dstPanel, panels]:
 * `panels` panels of `width` lanes, the last one short when `lanes` is not a multiple.
 * GEMM row: [2, pa, pb, c, ldc, k, flags, bias, mPanels, nPanels, paStride, pbStride, kc, mr]:
 * the k extent in chunks of `kc`; C is accumulated after the first chunk, the epilogue flags
 * (bias, relu) apply to the last.
 * TRANSPOSE row: [3, src, dst, rows, cols, r0, r1]: rows [r0, r1) of a rows×cols matrix into the
 * cols×rows one, in tiles of 16 rows × 8 columns: with a power-of-two row count the 8 lines a tile writes (one per column) fall in one L1 set, which holds 8–12 ways: wider tiles thrash it.
 */
const runTask = (x: Kernel.Exports, ctl: Int32Array, at: number): void => {
  const kind = ctl[at]!
  if (kind === 1) {
    const src = ctl[at + 1]!, outer = ctl[at + 2]!, inner = ctl[at + 3]!, dst = ctl[at + 4]!, lanes = ctl[at + 5]!
    const count = ctl[at + 6]!, width = ctl[at + 7]!, step = ctl[at + 8]!, srcPanel = ctl[at + 9]!, dstPanel = ctl[at + 10]!, panels = ctl[at + 11]!
    for (let p = 0; p < panels; p++) {
      const here = Math.min(width, lanes - p * width)
      // Contiguous full panels (B as stored, Aᵀ as stored) copy as f32x4.
      const from = src + p * srcPanel, to = dst + p * dstPanel
      if (outer === 4 && here === width && (width & 3) === 0 && step === width * 4) x.copy(from, inner, to, count, width)
      else if (inner === 4 && here === width && (width & 3) === 0 && count >= 4) {
        // Rows of contiguous elements (A, Bᵀ as stored): 4×4 transposes, then the k tail.
        const blocks = count >> 2, rest = count & 3
        for (let l = 0; l < width; l += 4) x.pack4(from + l * outer, outer, to + l * 4, blocks, step)
        if (rest > 0) x.pack(from + blocks * 16, outer, 4, to + blocks * 4 * step, width, rest, width, step)
      } else x.pack(from, outer, inner, to, here, count, width, step)
    }
  } else if (kind === 2) {
    const pa = ctl[at + 1]!, pb = ctl[at + 2]!, c = ctl[at + 3]!, ldc = ctl[at + 4]!, k = ctl[at + 5]!, flags = ctl[at + 6]!, bias = ctl[at + 7]!
    const mPanels = ctl[at + 8]!, nPanels = ctl[at + 9]!, paStride = ctl[at + 10]!, pbStride = ctl[at + 11]!, kc = ctl[at + 12]!, mr = ctl[at + 13]!
    for (let k0 = 0; k0 < k; k0 += kc) {
      const last = k0 + kc >= k
      x.block(pa + k0 * mr * 4, pb + k0 * 32, c, ldc, Math.min(kc, k - k0), (k0 > 0 ? 1 : 0) | (last ? flags : 0), bias, mPanels, nPanels, paStride, pbStride)
    }
  } else if (kind === 3) {
    const src = ctl[at + 1]!, dst = ctl[at + 2]!, rows = ctl[at + 3]!, cols = ctl[at + 4]!, r0 = ctl[at + 5]!, r1 = ctl[at + 6]!
    for (let r = r0; r < r1; r += 16) {
      const lanes = Math.min(16, r1 - r)
      for (let c = 0; c < cols; c += 8) x.pack(src + (r * cols + c) * 4, cols * 4, 4, dst + (c * rows + r) * 4, lanes, Math.min(8, cols - c), lanes, rows * 4)
    }
  }
}

/**
 * Claims and runs tasks of generation `gen` until none is left. Self-contained (workers' code).
 */
const work = (x: Kernel.Exports, ctl: Int32Array, gen: number, run: typeof runTask): void => {
  const g = gen & 0x7fff
  for (;;) {
    const v = Atomics.load(ctl, 1)
    if (v >>> 16 !== g) return
    const t = v & 0xffff
    const count = Atomics.load(ctl, 2)
    if (t >= count) return
    if (Atomics.compareExchange(ctl, 1, v, v + 1) !== v) continue
    try {
      run(x, ctl, 64 + t * 16)
    } catch {
      Atomics.store(ctl, 5, 1)
    }
    if (Atomics.add(ctl, 3, 1) + 1 === count) Atomics.notify(ctl, 3)
  }
}

// The worker: instantiate the posted module on the shared memory, then wait for generations.
const workerSource = (): string => `
const { workerData } = require("node:worker_threads")
const { module, memory } = workerData
const x = new WebAssembly.Instance(module, { env: { memory } }).exports
const ctl = new Int32Array(memory.buffer, 0, ${TABLE + MAX_TASKS * ROW})
const runTask = ${runTask.toString()}
const work = ${work.toString()}
let seen = Atomics.load(ctl, ${GEN})
for (;;) {
  Atomics.wait(ctl, ${GEN}, seen)
  seen = Atomics.load(ctl, ${GEN})
  if (Atomics.load(ctl, ${QUIT}) !== 0) break
  work(x, ctl, seen, runTask)
}
`

/** The threads could not start (no WebAssembly SIMD, or a worker failed to start). @category errors */
export class GemmError extends Schema.TaggedError<GemmError>()("GemmError", {
  reason: Schema.Literals(["NoSimd", "WorkerFailed"]),
  detail: Schema.String
}) {
  override get message() {
    return `gemm threads (${this.reason}): ${this.detail}`
  }
}

/**
 * Starts `threads − 1` workers (the caller is the last thread). Rejects with a `GemmError` when
 * the runtime has no WebAssembly SIMD or a worker fails to start.
 *
 * @category constructors
 */
export const start = async (threads: number): Promise<Threads> => {
  const compiled = Kernel.compile()
  if (compiled === undefined) throw new GemmError({ reason: "NoSimd", detail: "this runtime does not validate WebAssembly SIMD (Node ≥ 16.4 does)" })
  const count = Math.max(1, Math.floor(threads))
  const memory = new WebAssembly.Memory({ initial: Math.ceil(CONTROL_BYTES / PAGE) + 16, maximum: 65536, shared: true })
  const kernel = Kernel.instantiate(compiled.module, memory)
  const ctl = new Int32Array(memory.buffer, 0, TABLE + MAX_TASKS * ROW)
  const source = workerSource()
  const workers = await Promise.all(
    Array.from(
      { length: count - 1 },
      () =>
        new Promise<Worker>((resolve, reject) => {
          const worker = new Worker(source, { eval: true, workerData: { module: compiled.module, memory } })
          worker.once("online", () => {
            // Never keeps the process alive by itself (the owner closes it; this is a backstop).
            worker.unref()
            resolve(worker)
          })
          worker.once("error", (cause) => reject(new GemmError({ reason: "WorkerFailed", detail: cause instanceof Error ? cause.message : String(cause) })))
        })
    )
  )
  let generation = Atomics.load(ctl, GEN)
  const dataStart = Math.ceil(CONTROL_BYTES / 64) * 64

  const data = (bytes: number): number => {
    const need = dataStart + bytes
    const have = memory.buffer.byteLength
    if (need > have) memory.grow(Math.ceil((need - have) / PAGE))
    return dataStart
  }

  const run = (tasks: number): void => {
    if (tasks > MAX_TASKS) throw new Error(`gemm: ${tasks} tasks in one dispatch (at most ${MAX_TASKS})`)
    if (tasks === 0) return
    if (workers.length === 0) {
      for (let t = 0; t < tasks; t++) runTask(kernel, ctl, TABLE + t * ROW)
      return
    }
    generation = (generation + 1) | 0
    Atomics.store(ctl, COUNT, tasks)
    Atomics.store(ctl, DONE, 0)
    Atomics.store(ctl, FAILED, 0)
    Atomics.store(ctl, CLAIM, (generation & 0x7fff) << 16)
    Atomics.store(ctl, GEN, generation)
    Atomics.notify(ctl, GEN)
    work(kernel, ctl, generation, runTask)
    for (;;) {
      const done = Atomics.load(ctl, DONE)
      if (done >= tasks) break
      Atomics.wait(ctl, DONE, done)
    }
    if (Atomics.load(ctl, FAILED) !== 0) throw new Error("gemm: a task failed in a worker (out-of-bounds memory access in the kernel)")
  }

  const close = async (): Promise<void> => {
    Atomics.store(ctl, QUIT, 1)
    Atomics.add(ctl, GEN, 1)
    Atomics.notify(ctl, GEN)
    await Promise.all(workers.map((w) => w.terminate()))
  }

  return { threads: count, fma: compiled.fma, memory, kernel, data, run, table: () => new Int32Array(memory.buffer, 0, TABLE + MAX_TASKS * ROW), close }
}
