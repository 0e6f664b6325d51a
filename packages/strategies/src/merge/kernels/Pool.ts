/**
 * A pool of worker threads (node:worker_threads) that runs kernel ops (`Ops.ts`) on element
 * ranges of tensors in shared memory: a `SharedArrayBuffer`, or better an {@link Arena}, whose
 * arrays the workers' SIMD kernels can address.
 *
 * A tensor is split into one contiguous range per worker, on multiples of `block` elements
 * (`Gram.BLOCK`), which is what makes statistics identical for any worker count (see `Gram.ts`);
 * elementwise ops are per element, so their bytes never depend on the split. Ranges smaller than
 * `inlineBelow` elements run in the calling thread (the same ops, the same bytes) to spare the
 * message round trip. A run is uninterruptible: once workers write into memory, the run waits
 * for them, so a caller never frees memory a worker still writes.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Schema, type Scope } from "effect"
import { Worker } from "node:worker_threads"
import type { Arena } from "./Arena.ts"
import { BLOCK } from "./Gram.ts"
import { type Context as OpContext, type OpArgs, type OpName, type OpResult, run as runHere } from "./Ops.ts"
import * as Packed from "./Packed.ts"
import * as Simd from "./Simd.ts"
import * as TiesSimd from "./TiesSimd.ts"
import { encode } from "./Transfer.ts"
import type { Request, Response } from "./worker.ts"

/** A worker failed to start, crashed, or an op threw (a defect in the kernel or its arguments). @category errors */
export class PoolError extends Schema.TaggedError<PoolError>()("PoolError", {
  op: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `kernel pool: ${this.op}: ${this.detail}`
  }
}

/** A half-open element range. @category models */
export interface Range {
  readonly start: number
  readonly end: number
}

/** @category models */
export interface Pool {
  /** Number of worker threads. */
  readonly workers: number
  /** The arena whose arrays get the SIMD kernels, if the pool was given one. */
  readonly arena: Arena | undefined
  /** Splits `[0, n)` into at most one range per worker, on multiples of `block`. */
  readonly split: (n: number, block?: number) => ReadonlyArray<Range>
  /** Runs `op` on each range (in parallel) and returns the per-range results in range order. */
  readonly run: <K extends OpName>(op: K, args: OpArgs<K>, ranges: ReadonlyArray<Range>) => Effect.Effect<Array<OpResult<K>>, PoolError>
}

/** @category models */
export interface PoolOptions {
  /** Worker threads (≥ 1). */
  readonly workers: number
  /** Shared arena: its arrays run the SIMD kernels, in the workers and in this thread. */
  readonly arena?: Arena
  /** Work of fewer elements than this runs in the calling thread (default 65536; 0 = never). */
  readonly inlineBelow?: number
}

// From the sources, the worker is worker.ts beside this module; in the CLI bundle (every module
// is a file in dist/, see scripts/build-cli.mjs) it is the bundle's merge-worker.mjs.
const WORKER_URL = new URL(import.meta.url.endsWith(".ts") ? "./worker.ts" : "./merge-worker.mjs", import.meta.url)

interface Slot {
  readonly worker: Worker
  readonly pending: Map<number, { resolve: (r: unknown) => void; reject: (e: PoolError) => void; op: string }>
}

/** Starts the workers; they are terminated when the scope closes. @category constructors */
export const make = (options: PoolOptions): Effect.Effect<Pool, PoolError, Scope.Scope> =>
  Effect.gen(function* () {
    const count = Math.max(1, Math.floor(options.workers))
    const memory = options.arena?.memory
    const slots = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => Promise.all(Array.from({ length: count }, () => spawn(memory))),
        catch: (cause) => new PoolError({ op: "start", detail: describe(cause) })
      }),
      (started) => Effect.promise(() => Promise.all(started.map((s) => s.worker.terminate())))
    )
    const simd = options.arena !== undefined && Simd.isSupported() ? Simd.make(options.arena.memory, options.arena.owns) : undefined
    const ctx: OpContext = {
      simd,
      packed: simd !== undefined && options.arena !== undefined ? Packed.make(simd.memory, options.arena.owns) : undefined,
      ties: TiesSimd.cache()
    }
    const inlineBelow = options.inlineBelow ?? 65536
    const inArena = (a: ArrayBufferView) => options.arena?.owns(a) ?? false
    let nextId = 0

    const send = (slot: Slot, op: OpName, args: Record<string, unknown>, range: Range): Promise<unknown> =>
      new Promise((resolve, reject) => {
        const id = nextId++
        slot.pending.set(id, { resolve, reject, op })
        const request: Request = { id, op, args, start: range.start, end: range.end }
        slot.worker.postMessage(request)
      })

    const run = <K extends OpName>(op: K, args: OpArgs<K>, ranges: ReadonlyArray<Range>): Effect.Effect<Array<OpResult<K>>, PoolError> => {
      const total = ranges.reduce((t, r) => t + (r.end - r.start), 0)
      if (total < inlineBelow) {
        return Effect.try({
          try: () => ranges.map((r) => runHere(op, args, r.start, r.end, ctx)),
          catch: (cause) => new PoolError({ op, detail: describe(cause) })
        })
      }
      const encoded = encode(args as Record<string, unknown>, inArena)
      if ("notShared" in encoded) {
        const detail = `argument "${encoded.notShared}" is not in shared memory: allocate it from the pool's arena or a SharedArrayBuffer`
        return Effect.fail(new PoolError({ op, detail }))
      }
      return Effect.uninterruptible(
        Effect.tryPromise({
          try: () => Promise.all(ranges.map((r, i) => send(slots[i % count]!, op, encoded.encoded, r))) as Promise<Array<OpResult<K>>>,
          catch: (cause) => (cause instanceof PoolError ? cause : new PoolError({ op, detail: describe(cause) }))
        })
      )
    }

    return { workers: count, arena: options.arena, split: (n: number, block = BLOCK) => split(n, count, block), run }
  })

/**
 * The pool as a service, for stages that use it without owning it (the runner provides one
 * layer per run, sized to its CPU slots).
 *
 * @category services
 */
export class KernelPool extends Context.Service<KernelPool, Pool>()("crucible/strategies/merge/kernels/KernelPool") {
  /** A pool started when the layer is built and stopped when it is released. */
  static readonly layer = (options: PoolOptions): Layer.Layer<KernelPool, PoolError> => Layer.effect(KernelPool, make(options))
}

/**
 * Splits `[0, n)` into at most `parts` contiguous ranges of whole blocks (the last may end
 * mid-block), as even as blocks allow.
 *
 * @category models
 */
export const split = (n: number, parts: number, block = BLOCK): ReadonlyArray<Range> => {
  const blocks = Math.ceil(n / block)
  const count = Math.max(1, Math.min(parts, blocks))
  const ranges: Array<Range> = []
  for (let w = 0; w < count; w++) {
    const b0 = Math.floor((w * blocks) / count)
    const b1 = Math.floor(((w + 1) * blocks) / count)
    ranges.push({ start: Math.min(n, b0 * block), end: Math.min(n, b1 * block) })
  }
  return ranges
}

const spawn = (memory: WebAssembly.Memory | undefined): Promise<Slot> =>
  new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_URL, { workerData: { memory } })
    const slot: Slot = { worker, pending: new Map() }
    const failAll = (detail: string) => {
      for (const [id, p] of slot.pending) {
        slot.pending.delete(id)
        p.reject(new PoolError({ op: p.op, detail }))
      }
    }
    worker.once("error", (cause) => {
      failAll(`worker crashed: ${describe(cause)}`)
      reject(cause)
    })
    worker.once("exit", (code) => failAll(`worker exited with code ${code}`))
    worker.on("message", (message: Response | "ready") => {
      if (message === "ready") return resolve(slot)
      const p = slot.pending.get(message.id)
      if (p === undefined) return
      slot.pending.delete(message.id)
      if (message.ok) p.resolve(message.result)
      else p.reject(new PoolError({ op: p.op, detail: message.error }))
    })
  })

const describe = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))
