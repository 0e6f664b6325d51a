/**
 * The differentiable layer ops of Crucible's architectures, each a `tf.customGrad` whose
 * gradient is written out with forward ops only. Two reasons:
 * - `@tensorflow/tfjs-core` loaded by Node registers no gradients, so TF.js cannot
 *   differentiate its own ops here;
 * - the wasm backend's transposed matMul is ~10–100× slower than a plain one, and the
 *   built-in dense gradients use it. These gradients transpose explicitly
 *   (`matMul(dy, transpose(W))`, `matMul(transpose(x), dy)`), which is the fast path — except
 *   where the threaded GEMM (`backend/gemm/`) takes the product: it reads transposed operands
 *   as they are stored, so dense asks it for `dy·Wᵀ` and `xᵀ·dy` directly; the
 *   convolution gradients are convolutions too (wasm lacks the filter-gradient kernel, and its
 *   `conv2dTranspose` is slow).
 *
 * Tensors are in TF.js layout (see `Layout.ts`): dense weights `[in, out]`, conv weights
 * `[kh, kw, in, out]`, images NHWC. Every op takes its inputs as tensors so the tape links them;
 * an op whose input needs no gradient (raw data) is told so and skips that part of the backward
 * pass. Anything an op needs in its backward pass goes through `save`, because the forward pass
 * runs in its own `tidy`.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs-core"
import * as WasmKernels from "../backend/gemm/WasmKernels.ts"
import { customOp, savedAt as at } from "./CustomOp.ts"

/**
 * `x·W + b` with `W` `[in, out]`. With `inputGrad: false` the input is treated as a constant
 * (the raw batch): no `dy·Wᵀ` is computed for it.
 */
export const dense = (x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D | undefined, inputGrad = true): tf.Tensor2D => {
  const inputs: Array<tf.Tensor> = inputGrad ? [x, w] : [w]
  if (b !== undefined) inputs.push(b)
  return customOp<tf.Tensor2D>((ins, save) => {
    const xi = inputGrad ? (ins[0] as tf.Tensor2D) : x
    const wi = ins[inputGrad ? 1 : 0] as tf.Tensor2D
    const bi = b === undefined ? undefined : (ins[inputGrad ? 2 : 1] as tf.Tensor1D)
    save([xi, wi])
    const value = (bi === undefined ? tf.matMul(xi, wi) : tf.fused.matMul({ a: xi, b: wi, bias: bi })) as tf.Tensor2D
    return {
      value,
      gradFunc: (dy, saved) => {
        const xs = at(saved, 0) as tf.Tensor2D
        const ws = at(saved, 1) as tf.Tensor2D
        const grads: Array<tf.Tensor> = []
        const [batch, inSize] = xs.shape
        const outSize = ws.shape[1]
        // dx = dy·Wᵀ, dW = xᵀ·dy: as transposed products where the GEMM takes them (no copy), else
        // with explicit transposes (XNNPACK's transposed matMul is ~100× slower). Same bits either way.
        if (inputGrad) grads.push(WasmKernels.takesTransposed(batch, inSize, outSize) ? tf.matMul(dy, ws, false, true) : tf.matMul(dy, tf.transpose(ws)))
        grads.push(WasmKernels.takesTransposed(inSize, outSize, batch) ? tf.matMul(xs, dy, true, false) : tf.matMul(tf.transpose(xs), dy))
        if (bi !== undefined) grads.push(tf.sum(dy, 0))
        return grads
      }
    }
  }, inputs)
}

/** Geometry of a 2-D convolution or pooling window. */
export interface Window {
  readonly kernel: number
  readonly stride: number
  readonly padding: number
}

/**
 * `∂L/∂W` of a convolution as a convolution (the wasm backend has no filter-gradient kernel):
 * `dW[i, j, c, o] = Σ_{n,h,w} x̃[n, s·h + i, s·w + j, c] · dy[n, h, w, o]` is the valid
 * convolution of the padded input, with channels as batch and batch as channels, by `dy`
 * dilated by the stride.
 */
export const conv2dFilterGrad = (x: tf.Tensor4D, dy: tf.Tensor4D, window: Window): tf.Tensor4D =>
  tf.tidy(() => {
    const { kernel: k, stride: s, padding: p } = window
    const cin = x.shape[3]
    const cout = dy.shape[3]
    const padded = p === 0 ? x : tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
    const input = tf.transpose(padded, [3, 1, 2, 0])
    const filter = tf.transpose(dy, [1, 2, 0, 3])
    let out = tf.conv2d(input as tf.Tensor4D, filter as tf.Tensor4D, 1, "valid", "NHWC", s)
    // with a stride, the dilated dy may fit more than k positions: only the first k are taps
    if (out.shape[1] !== k || out.shape[2] !== k) out = tf.slice(out, [0, 0, 0, 0], [cin, k, k, cout])
    return tf.transpose(out, [1, 2, 0, 3])
  })

/**
 * `∂L/∂x` of a convolution. With stride 1 it is the convolution of `dy` by the filter rotated
 * 180° with its channel axes swapped (padding k − 1 − p): ~7× faster on wasm than
 * `conv2dTranspose`, which other strides use.
 */
export const conv2dInputGrad = (dy: tf.Tensor4D, w: tf.Tensor4D, xShape: [number, number, number, number], window: Window): tf.Tensor4D =>
  tf.tidy(() => {
    const { kernel: k, stride: s, padding: p } = window
    if (s !== 1 || p > k - 1) return tf.conv2dTranspose(dy, w, xShape, s, p)
    const flipped = tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D
    return tf.conv2d(dy, flipped, 1, k - 1 - p)
  })

/** `nn.Conv2d` on NHWC input with a `[kh, kw, in, out]` filter and symmetric zero padding. */
export const conv2d = (x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor1D | undefined, window: Window, inputGrad = true): tf.Tensor4D => {
  const inputs: Array<tf.Tensor> = inputGrad ? [x, w] : [w]
  if (b !== undefined) inputs.push(b)
  const { stride, padding } = window
  return customOp<tf.Tensor4D>((ins, save) => {
    const xi = inputGrad ? (ins[0] as tf.Tensor4D) : x
    const wi = ins[inputGrad ? 1 : 0] as tf.Tensor4D
    const bi = b === undefined ? undefined : (ins[inputGrad ? 2 : 1] as tf.Tensor1D)
    save([xi, wi])
    const value = (
      bi === undefined ? tf.conv2d(xi, wi, stride, padding) : tf.fused.conv2d({ x: xi, filter: wi, strides: stride, pad: padding, bias: bi })
    ) as tf.Tensor4D
    return {
      value,
      gradFunc: (dy, saved) => {
        const xs = at(saved, 0) as tf.Tensor4D
        const ws = at(saved, 1) as tf.Tensor4D
        const grads: Array<tf.Tensor> = []
        if (inputGrad) grads.push(conv2dInputGrad(dy, ws, xs.shape, window))
        grads.push(conv2dFilterGrad(xs, dy, window))
        if (bi !== undefined) grads.push(tf.sum(dy, [0, 1, 2]))
        return grads
      }
    }
  }, inputs)
}

/** `max(x, 0)`; its gradient is 0 where `x ≤ 0`, as in PyTorch. */
export const relu = <T extends tf.Tensor>(x: T): T =>
  customOp<T>((ins, save) => {
    const value = tf.relu(ins[0] as T)
    save([value])
    return { value, gradFunc: (dy, saved) => [tf.mul(dy, tf.step(at(saved, 0)))] }
  }, [x])

/** `nn.MaxPool2d(kernel, stride)` (no padding) on NHWC. */
export const maxPool = (x: tf.Tensor4D, kernel: number, stride: number): tf.Tensor4D =>
  customOp<tf.Tensor4D>((ins, save) => {
    const xi = ins[0] as tf.Tensor4D
    const value = tf.maxPool(xi, kernel, stride, "valid")
    save([xi, value])
    return {
      value,
      gradFunc: (dy, saved) => [
        tf.engine().runKernel("MaxPoolGrad", { dy, input: at(saved, 0), output: at(saved, 1) }, { filterSize: kernel, strides: stride, pad: "valid" }) as tf.Tensor
      ]
    }
  }, [x])

/** `nn.AvgPool2d(kernel, stride)` (no padding) on NHWC. */
export const avgPool = (x: tf.Tensor4D, kernel: number, stride: number): tf.Tensor4D =>
  customOp<tf.Tensor4D>((ins, save) => {
    const xi = ins[0] as tf.Tensor4D
    save([xi])
    return {
      value: tf.avgPool(xi, kernel, stride, "valid"),
      gradFunc: (dy, saved) => [
        tf.engine().runKernel("AvgPoolGrad", { dy, input: at(saved, 0) }, { filterSize: kernel, strides: stride, pad: "valid" }) as tf.Tensor
      ]
    }
  }, [x])

/** `nn.Flatten()` of an NHWC batch in PyTorch's channel-major order: `[N, C·H·W]`. */
export const flatten = (x: tf.Tensor): tf.Tensor2D => {
  if (x.rank === 2) return x as tf.Tensor2D
  const [n, h, w, c] = x.shape as [number, number, number, number]
  return customOp<tf.Tensor2D>(
    (ins) => ({
      value: c === 1 ? tf.reshape(ins[0]!, [n, h * w]) : tf.reshape(tf.transpose(ins[0]!, [0, 3, 1, 2]), [n, c * h * w]),
      gradFunc: (dy) => [c === 1 ? tf.reshape(dy, [n, h, w, 1]) : tf.transpose(tf.reshape(dy, [n, c, h, w]), [0, 2, 3, 1])]
    }),
    [x]
  )
}

/** `a + b` of equal shapes (a residual connection). */
export const add = <T extends tf.Tensor>(a: T, b: T): T =>
  customOp<T>(
    (ins) => ({
      value: tf.add(ins[0]!, ins[1]!),
      // Two handles on one gradient: the tape disposes each separately.
      gradFunc: (dy) => [tf.clone(dy), tf.clone(dy)]
    }),
    [a, b]
  )

/** Per-channel batch statistics of a training-mode BatchNorm: mean and biased variance. */
export interface BatchStats {
  readonly mean: tf.Tensor1D
  readonly variance: tf.Tensor1D
  /** Values per channel that the statistics were taken over (`N·H·W`). */
  readonly count: number
}

const channelAxes = (rank: number): Array<number> => Array.from({ length: rank - 1 }, (_, i) => i)

/**
 * Training-mode BatchNorm over every axis but the last (channels): normalises with the batch's
 * mean and biased variance. `onStats` receives those statistics (kept: the caller disposes them)
 * so the running averages can be updated outside the gradient.
 */
export const batchNormTrain = <T extends tf.Tensor>(
  x: T,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  eps: number,
  onStats?: (stats: BatchStats) => void
): T =>
  customOp<T>((ins, save) => {
    const [xi, g, bt] = ins as [T, tf.Tensor1D, tf.Tensor1D]
    const axes = channelAxes(xi.rank)
    const count = xi.size / xi.shape[xi.rank - 1]!
    const mean = tf.mean(xi, axes)
    const centered = tf.sub(xi, mean)
    const variance = tf.mean(tf.square(centered), axes)
    const invStd = tf.rsqrt(tf.add(variance, eps))
    const xhat = tf.mul(centered, invStd)
    save([xhat, invStd, g])
    if (onStats) onStats({ mean: tf.keep(mean) as tf.Tensor1D, variance: tf.keep(variance) as tf.Tensor1D, count })
    return {
      value: tf.add(tf.mul(xhat, g), bt) as T,
      gradFunc: (dy, saved) => {
        const [xh, is, gs] = [at(saved, 0), at(saved, 1), at(saved, 2)]
        const dbeta = tf.sum(dy, axes)
        const dgamma = tf.sum(tf.mul(dy, xh), axes)
        const centeredDy = tf.sub(tf.sub(dy, tf.div(dbeta, count)), tf.mul(xh, tf.div(dgamma, count)))
        return [tf.mul(centeredDy, tf.mul(gs, is)), dgamma, dbeta]
      }
    }
  }, [x, gamma, beta])

/** Evaluation-mode BatchNorm with running statistics (constants, not differentiated). */
export const batchNormEval = <T extends tf.Tensor>(
  x: T,
  runningMean: tf.Tensor1D,
  runningVar: tf.Tensor1D,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  eps: number
): T =>
  customOp<T>((ins, save) => {
    const [xi, g, bt] = ins as [T, tf.Tensor1D, tf.Tensor1D]
    const invStd = tf.rsqrt(tf.add(runningVar, eps))
    const xhat = tf.mul(tf.sub(xi, runningMean), invStd)
    save([xhat, invStd, g])
    const axes = channelAxes(xi.rank)
    return {
      value: tf.add(tf.mul(xhat, g), bt) as T,
      gradFunc: (dy, saved) => [tf.mul(dy, tf.mul(at(saved, 2), at(saved, 1))), tf.sum(tf.mul(dy, at(saved, 0)), axes), tf.sum(dy, axes)]
    }
  }, [x, gamma, beta])

/** LayerNorm of each sample over all its axes; `gamma`, `beta` have the sample's shape. */
export const layerNorm = <T extends tf.Tensor>(x: T, gamma: tf.Tensor, beta: tf.Tensor, eps: number): T =>
  customOp<T>((ins, save) => {
    const [xi, g, bt] = ins as [T, tf.Tensor, tf.Tensor]
    const axes = Array.from({ length: xi.rank - 1 }, (_, i) => i + 1)
    const mean = tf.mean(xi, axes, true)
    const centered = tf.sub(xi, mean)
    const invStd = tf.rsqrt(tf.add(tf.mean(tf.square(centered), axes, true), eps))
    const xhat = tf.mul(centered, invStd)
    save([xhat, invStd, g])
    return {
      value: tf.add(tf.mul(xhat, g), bt) as T,
      gradFunc: (dy, saved) => {
        const [xh, is, gs] = [at(saved, 0), at(saved, 1), at(saved, 2)]
        const gy = tf.mul(dy, gs)
        const dx = tf.mul(is, tf.sub(tf.sub(gy, tf.mean(gy, axes, true)), tf.mul(xh, tf.mean(tf.mul(gy, xh), axes, true))))
        return [dx, tf.sum(tf.mul(dy, xh), 0), tf.sum(dy, 0)]
      }
    }
  }, [x, gamma, beta])
