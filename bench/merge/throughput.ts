/**
 * The merge kernels' own throughput, in this process, on the tensor sizes of the end-to-end
 * bench: the linear merge as `merge/linear` runs it (`StreamSum` over in-memory tensors, 1M
 * elements at a time, pulled as the safetensors writer pulls them: `readInto` copies each input
 * range into the SIMD arena — the copy a file read makes from the page cache — then the read-ahead,
 * the sum, and the copy into the writer's reused buffer, `sumInto`), the bare SIMD
 * kernel on arena arrays, and the TIES kernel on one [4096, 4096] tensor. GB/s count the bytes a
 * merge must move: every input read once and the output written once.
 */
import * as Arena from "../../packages/strategies/src/merge/kernels/Arena.ts"
import * as Simd from "../../packages/strategies/src/merge/kernels/Simd.ts"
import * as TaskArithmetic from "../../packages/strategies/src/merge/kernels/TaskArithmetic.ts"
import * as TaskStatistics from "../../packages/strategies/src/merge/kernels/TaskStatistics.ts"
import * as StreamSum from "../../packages/strategies/src/merge/StreamSum.ts"
import * as TensorRef from "../../packages/core/src/tensor/TensorRef.ts"
import { Effect, Exit, Result, Scope } from "./effect.ts"

/** Throughput of one kernel. */
export interface Throughput {
  readonly kernel: string
  readonly seconds: number
  readonly gbps: number
}

const best = async (fn: () => unknown, repeats: number): Promise<number> => {
  await fn()
  let t = Infinity
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now()
    await fn()
    t = Math.min(t, (performance.now() - t0) / 1000)
  }
  return t
}

// A tensor over an array in memory: `readInto` copies, as a file read copies from the page cache.
const inMemory = (name: string, values: Float32Array<ArrayBuffer>): TensorRef.TensorRef => {
  const view = (range?: TensorRef.ElementRange) => new Uint8Array(values.buffer, (range?.start ?? 0) * 4, ((range?.end ?? values.length) - (range?.start ?? 0)) * 4)
  const tensor: TensorRef.TensorRef = { name, dtype: "F32", shape: [values.length], read: (range) => Effect.succeed(view(range)) }
  return TensorRef.withReadInto(tensor, (range, target) => Effect.sync(() => target.set(view(range))))
}

const fill = <A extends Float32Array>(a: A, seed: number, around?: Float32Array): A => {
  let s = seed >>> 0
  for (let j = 0; j < a.length; j++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    const u = s / 4294967296 - 0.5
    a[j] = around === undefined ? u * 0.03 : around[j]! + 0.002 * u
  }
  return a
}

/** Linear kernels over `models` inputs of `n` elements, in `chunk`-element reads. */
export const linear = async (n: number, models: number, chunk: number, repeats: number): Promise<Array<Throughput>> => {
  const weights = Array.from({ length: models }, () => 1 / models)
  const inputs = Array.from({ length: models }, (_, i) => fill(new Float32Array(n), 7 + i))
  const bytes = (models + 1) * n * 4
  const scope = Effect.runSync(Scope.make())
  const stream = StreamSum.make([inputs.map((x, i) => inMemory(`m${i}`, x))], weights, scope)
  const targets = [new Uint8Array(new SharedArrayBuffer(chunk * 4)), new Uint8Array(new SharedArrayBuffer(chunk * 4))]
  const streamed = await best(() => Effect.runPromise(Effect.gen(function* () {
    for (let start = 0, k = 0; start < n; start += chunk, k++) {
      const end = Math.min(n, start + chunk)
      yield* stream.sumInto(0, { start, end }, "F32", targets[k & 1]!.subarray(0, (end - start) * 4))
    }
  })), repeats)
  await Effect.runPromise(Scope.close(scope, Exit.void))
  const arena = Arena.make({ maxBytes: (models + 1) * n * 4 + (1 << 20) })
  const inArena = inputs.map((x) => {
    const a = arena.alloc(n)!
    a.set(x)
    return a
  })
  const out = arena.alloc(n)!
  const simd = Simd.make(arena.memory, arena.owns)
  const bare = await best(() => simd.weightedSum(out, inArena, weights, 0, n), repeats)
  return [
    { kernel: "linear as merge/linear runs it (read copy, SIMD, copy to writer)", seconds: streamed, gbps: bytes / streamed / 1e9 },
    { kernel: "linear, bare SIMD kernel on arena arrays", seconds: bare, gbps: bytes / bare / 1e9 }
  ]
}

/** The TIES kernel (statistics and apply, one thread) on a base and `models` fine-tunes of `n` elements. */
export const ties = async (n: number, models: number, density: number, repeats: number): Promise<Throughput> => {
  const base = fill(new Float32Array(n), 1)
  const inputs = Array.from({ length: models }, (_, i) => fill(new Float32Array(n), 100 + i, base))
  const weights = inputs.map(() => 1)
  const plan = Result.getOrThrow(TaskArithmetic.plan({ weights, ...TaskArithmetic.presets.ties, density }, [n], models, "bench.weight"))
  const out = new Float32Array(n)
  const seconds = await best(() => TaskArithmetic.apply(TaskStatistics.prepare(plan, base, inputs), out, base, inputs), repeats)
  return { kernel: "TIES kernel (statistics + apply, 1 thread)", seconds, gbps: ((models + 2) * n * 4) / seconds / 1e9 }
}
