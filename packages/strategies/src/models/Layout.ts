/**
 * The one place where PyTorch layout (how Crucible names, stores and exchanges tensors) meets
 * TF.js layout (how the kernels want them):
 *
 * | tensor                    | PyTorch              | TF.js                |
 * |---------------------------|----------------------|----------------------|
 * | `nn.Linear` weight        | `[out, in]`          | `[in, out]`          |
 * | `nn.Conv2d` weight        | `[out, in, kh, kw]`  | `[kh, kw, in, out]`  |
 * | LayerNorm over an image   | `[C, H, W]`          | `[H, W, C]`          |
 * | image batch / activation  | `[N, C, H, W]`       | `[N, H, W, C]`       |
 * | vectors, scalars, `[N, F]`| unchanged            | unchanged            |
 *
 * Parameters are converted when they are uploaded and downloaded, never inside a step.
 *
 * @since 0.1.0
 */
import type { ParamLayout } from "./Network.ts"

/** A float32 tensor on the host: a shape and its row-major values. @category models */
export interface HostTensor {
  readonly shape: ReadonlyArray<number>
  readonly data: Float32Array
}

/** Axis permutation from PyTorch to TF.js layout, per parameter layout. */
export const toTfPermutation: Readonly<Record<ParamLayout, ReadonlyArray<number> | undefined>> = {
  linear: [1, 0],
  conv: [2, 3, 1, 0],
  sample: [1, 2, 0],
  vector: undefined,
  scalar: undefined
}

/** NCHW → NHWC for image batches. */
export const NCHW_TO_NHWC: ReadonlyArray<number> = [0, 2, 3, 1]
/** NHWC → NCHW for image batches. */
export const NHWC_TO_NCHW: ReadonlyArray<number> = [0, 3, 1, 2]

/** The inverse of an axis permutation. */
export const invert = (perm: ReadonlyArray<number>): ReadonlyArray<number> => {
  const out = new Array<number>(perm.length)
  perm.forEach((axis, i) => (out[axis] = i))
  return out
}

/** `out.shape[i] = shape[perm[i]]`, values moved accordingly (like `torch.permute`). */
export const permute = (tensor: HostTensor, perm: ReadonlyArray<number>): HostTensor => {
  const { shape, data } = tensor
  const rank = shape.length
  if (perm.length !== rank) throw new RangeError(`permute: ${perm.length} axes for a rank-${rank} tensor`)
  const outShape = perm.map((axis) => shape[axis]!)
  const inStrides = new Array<number>(rank)
  let stride = 1
  for (let i = rank - 1; i >= 0; i--) {
    inStrides[i] = stride
    stride *= shape[i]!
  }
  const strides = perm.map((axis) => inStrides[axis]!)
  const out = new Float32Array(data.length)
  const index = new Array<number>(rank).fill(0)
  let src = 0
  for (let o = 0; o < out.length; o++) {
    out[o] = data[src]!
    for (let d = rank - 1; d >= 0; d--) {
      index[d]!++
      src += strides[d]!
      if (index[d]! < outShape[d]!) break
      src -= strides[d]! * outShape[d]!
      index[d] = 0
    }
  }
  return { shape: outShape, data: out }
}

/** A parameter in PyTorch layout → TF.js layout. */
export const paramToTf = (tensor: HostTensor, layout: ParamLayout): HostTensor => {
  const perm = toTfPermutation[layout]
  return perm === undefined ? tensor : permute(tensor, perm)
}

/** A parameter in TF.js layout → PyTorch layout. */
export const paramToTorch = (tensor: HostTensor, layout: ParamLayout): HostTensor => {
  const perm = toTfPermutation[layout]
  return perm === undefined ? tensor : permute(tensor, invert(perm))
}

/** A batch of activations in TF.js layout → PyTorch layout (only rank 4 changes). */
export const activationToTorch = (tensor: HostTensor): HostTensor => (tensor.shape.length === 4 ? permute(tensor, NHWC_TO_NCHW) : tensor)
