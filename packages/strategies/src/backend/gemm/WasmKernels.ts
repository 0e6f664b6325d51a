/**
 * The GEMM as TF.js's wasm kernels for `BatchMatMul` and `_FusedMatMul` (and the threads'
 * tiled transpose as its `Transpose` of float32 batches of 2-D transposes): each reads its inputs
 * from the wasm backend's heap, multiplies on {@link Threads} ({@link Gemm.multiply}) and writes a
 * heap tensor made by `backend.makeOutput`. What it does not take — problems under
 * `minFlops` (the threads' start-up and copies cost more than they save), dtypes other than
 * float32, prelu/leaky-relu/other fused activations, biases that are not 1-D of N or 1 values,
 * batch shapes that do not broadcast — goes to the kernel it replaced.
 *
 * `install` swaps the kernels in and returns the function that puts the replaced ones back.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs-core"
import * as Gemm from "./Gemm.ts"
import type { Threads } from "./Threads.ts"

/**
 * Below this many floating-point operations (2·M·N·K summed over the batch) the stock XNNPACK
 * kernel is used. Measured here on 2 threads (bench/train/README.md): 64³ (0.5 MFLOP) 0.023 ms
 * stock vs 0.036 ms; 128×512·512×10 (1.3 MFLOP) 0.09 vs 0.12; 128³ (4.2 MFLOP) 0.155 vs
 * 0.13–0.17 (even); 256³ (34 MFLOP) 0.97 vs 0.77–0.89; beyond, up to 2× (both threads busy).
 *
 * @category constants
 */
export const DEFAULT_MIN_FLOPS = 1 << 22

/**
 * Transposes of at least this many elements run on the threads (XNNPACK's takes ~5 ns an element
 * on 512×512 here, the tiled one well under 1).
 *
 * @category constants
 */
export const DEFAULT_MIN_TRANSPOSE = 1 << 14

interface HeapBackend {
  readonly dataIdMap: { get(dataId: object): { readonly memoryOffset: number; readonly shape: ReadonlyArray<number> } | undefined }
  readonly wasm: { readonly HEAPU8: Uint8Array }
  makeOutput(shape: ReadonlyArray<number>, dtype: tf.DataType): tf.TensorInfo
}

const heapFloats = (backend: HeapBackend, t: tf.TensorInfo): Float32Array => {
  const entry = backend.dataIdMap.get(t.dataId)!
  return new Float32Array(backend.wasm.HEAPU8.buffer, entry.memoryOffset, tf.util.sizeFromShape(t.shape))
}

interface Plan {
  readonly m: number
  readonly n: number
  readonly k: number
  readonly batchA: number
  readonly batchB: number
  readonly outShape: ReadonlyArray<number>
  readonly pairs: ReadonlyArray<readonly [number, number]>
}

const planOf = (a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean): Plan | undefined => {
  if (a.dtype !== "float32" || b.dtype !== "float32" || a.shape.length < 2 || b.shape.length < 2) return undefined
  const ra = a.shape.length, rb = b.shape.length
  const m = transposeA ? a.shape[ra - 1]! : a.shape[ra - 2]!
  const k = transposeA ? a.shape[ra - 2]! : a.shape[ra - 1]!
  const kb = transposeB ? b.shape[rb - 1]! : b.shape[rb - 2]!
  const n = transposeB ? b.shape[rb - 2]! : b.shape[rb - 1]!
  if (k !== kb || m === 0 || n === 0 || k === 0) return undefined
  const batch = Gemm.broadcastPairs(a.shape.slice(0, -2), b.shape.slice(0, -2))
  if (batch === undefined) return undefined
  const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2)), batchB = tf.util.sizeFromShape(b.shape.slice(0, -2))
  return { m, n, k, batchA, batchB, outShape: [...batch.shape, m, n], pairs: batch.pairs }
}

// Marks the kernel functions `install` registers, so a second initialisation sees them.
// The mark holds the thread count; the second, the FLOP threshold.
const MARK = Symbol.for("crucible/strategies/backend/gemm")
const MIN_FLOPS = Symbol.for("crucible/strategies/backend/gemm/minFlops")

/** The threads of the GEMM the wasm backend's `BatchMatMul` runs on; undefined when it is TF.js's own. @category getters */
export const installedThreads = (): number | undefined => (tf.getKernel("BatchMatMul", "wasm")?.kernelFunc as { [MARK]?: number } | undefined)?.[MARK]

/** Whether the wasm backend's `BatchMatMul` is the GEMM's. @category predicates */
export const isInstalled = (): boolean => installedThreads() !== undefined

/**
 * Whether an M×K·K×N product (transposed or not) on the active backend runs on the GEMM, where a
 * transposed operand costs nothing more — unlike XNNPACK's transposed matMul (~100× slower), which
 * the products it leaves to the stock kernel would get: callers transpose explicitly then.
 *
 * @category predicates
 */
export const takesTransposed = (m: number, n: number, k: number): boolean => {
  if (tf.getBackend() !== "wasm") return false
  const kernel = tf.getKernel("BatchMatMul", "wasm")?.kernelFunc as { [MARK]?: number; [MIN_FLOPS]?: number } | undefined
  return kernel?.[MARK] !== undefined && 2 * m * n * k >= (kernel[MIN_FLOPS] ?? Infinity)
}

/** Options of {@link install}. @category models */
export interface InstallOptions {
  readonly minFlops?: number
  readonly minTranspose?: number
}

/**
 * Registers the GEMM kernels for the wasm backend in place of the current ones; the returned
 * function restores those.
 *
 * @category constructors
 */
export const install = (threads: Threads, options: InstallOptions = {}): (() => void) => {
  const minFlops = options.minFlops ?? DEFAULT_MIN_FLOPS
  const originalBatch = tf.getKernel("BatchMatMul", "wasm")
  const originalFused = tf.getKernel("_FusedMatMul", "wasm")
  const originalTranspose = tf.getKernel("Transpose", "wasm")
  if (originalBatch === undefined || originalFused === undefined || originalTranspose === undefined) return () => {}
  const minTranspose = options.minTranspose ?? DEFAULT_MIN_TRANSPOSE
  const marked = (f: tf.KernelFunc): tf.KernelFunc => Object.assign(f, { [MARK]: threads.threads, [MIN_FLOPS]: minFlops })

  const run = (backend: HeapBackend, a: tf.TensorInfo, b: tf.TensorInfo, plan: Plan, transposeA: boolean, transposeB: boolean, bias: Float32Array | undefined, relu: boolean) => {
    let out: tf.TensorInfo | undefined
    Gemm.multiply(
      threads,
      { a: heapFloats(backend, a), b: heapFloats(backend, b), batchA: plan.batchA, batchB: plan.batchB, m: plan.m, n: plan.n, k: plan.k, transposeA, transposeB, pairs: plan.pairs, bias, relu },
      () => {
        out = backend.makeOutput(plan.outShape, "float32")
        return heapFloats(backend, out)
      }
    )
    return out!
  }
  const big = (plan: Plan) => 2 * plan.m * plan.n * plan.k * plan.pairs.length >= minFlops

  const batchMatMul: tf.KernelFunc = (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo }
    const { transposeA, transposeB } = args.attrs as unknown as tf.BatchMatMulAttrs
    const plan = planOf(a, b, transposeA, transposeB)
    if (plan === undefined || !big(plan)) return originalBatch.kernelFunc(args)
    return run(args.backend as unknown as HeapBackend, a, b, plan, transposeA, transposeB, undefined, false)
  }

  const fusedMatMul: tf.KernelFunc = (args) => {
    const { a, b, bias, preluActivationWeights } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo; bias?: tf.TensorInfo; preluActivationWeights?: tf.TensorInfo }
    const { transposeA, transposeB, activation } = args.attrs as unknown as tf._FusedMatMulAttrs
    const plan = planOf(a, b, transposeA, transposeB)
    const supported =
      plan !== undefined &&
      big(plan) &&
      preluActivationWeights == null &&
      (activation === "linear" || activation === "relu") &&
      (bias == null || (bias.dtype === "float32" && bias.shape.length === 1 && (bias.shape[0] === plan.n || bias.shape[0] === 1)))
    if (!supported) return originalFused.kernelFunc(args)
    const backend = args.backend as unknown as HeapBackend
    // The bias is read before the output is allocated (that may grow the heap): a copy, N floats.
    const biasValues = bias == null ? undefined : heapFloats(backend, bias).slice()
    return run(backend, a, b, plan!, transposeA, transposeB, biasValues, activation === "relu")
  }

  const transpose: tf.KernelFunc = (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo }
    const { perm } = args.attrs as unknown as tf.TransposeAttrs
    const size = tf.util.sizeFromShape(x.shape)
    const plan = x.dtype === "float32" && size >= minTranspose ? Gemm.asBatchTranspose(x.shape, perm) : undefined
    if (plan === undefined) return originalTranspose.kernelFunc(args)
    const backend = args.backend as unknown as HeapBackend
    let out: tf.TensorInfo | undefined
    Gemm.transpose(threads, heapFloats(backend, x), plan.batch, plan.rows, plan.cols, () => {
      out = backend.makeOutput(perm.map((i) => x.shape[i]!), "float32")
      return heapFloats(backend, out)
    })
    return out!
  }

  tf.unregisterKernel("Transpose", "wasm")
  tf.registerKernel({ ...originalTranspose, kernelFunc: marked(transpose) })
  tf.unregisterKernel("BatchMatMul", "wasm")
  tf.registerKernel({ ...originalBatch, kernelFunc: marked(batchMatMul) })
  tf.unregisterKernel("_FusedMatMul", "wasm")
  tf.registerKernel({ ...originalFused, kernelFunc: marked(fusedMatMul) })
  return () => {
    tf.unregisterKernel("Transpose", "wasm")
    tf.registerKernel(originalTranspose)
    tf.unregisterKernel("BatchMatMul", "wasm")
    tf.registerKernel(originalBatch)
    tf.unregisterKernel("_FusedMatMul", "wasm")
    tf.registerKernel(originalFused)
  }
}
