/** Small architectures and random data shared by the model tests. */
import * as Random from "../../src/backend/Random.ts"
import type { Arch } from "../../src/models/Arch.ts"
import type { Network } from "../../src/models/Network.ts"
import type { ParamSet } from "../../src/models/Params.ts"

/** A CNN using every layer kind: conv (strided, padded, 1×1), BatchNorm, ReLU, both pools, two residual kinds, LayerNorm on images and vectors. */
export const cnnArch: Arch = {
  type: "sequential",
  input: [2, 6, 6],
  layers: [
    { type: "conv2d", out: 3, kernel: 3, padding: 1 },
    { type: "batchnorm" },
    { type: "relu" },
    { type: "residual", body: [{ type: "conv2d", out: 3, kernel: 3, padding: 1 }, { type: "batchnorm" }, { type: "relu" }, { type: "conv2d", out: 3, kernel: 3, padding: 1, bias: false }] },
    { type: "relu" },
    { type: "maxpool", kernel: 2 },
    { type: "residual", body: [{ type: "conv2d", out: 4, kernel: 3, stride: 2, padding: 1 }], shortcut: [{ type: "conv2d", out: 4, kernel: 1, stride: 2 }] },
    { type: "layernorm" },
    { type: "avgpool", kernel: 2 },
    { type: "flatten" },
    { type: "dense", out: 5 },
    { type: "layernorm" },
    { type: "relu" },
    { type: "dense", out: 3 }
  ]
}

/** A plain CNN whose flatten sees C, H, W > 1, so its channel-major order matters. */
export const cnnFlatArch: Arch = {
  type: "sequential",
  input: [3, 5, 5],
  layers: [
    { type: "conv2d", out: 4, kernel: 3 },
    { type: "relu" },
    { type: "avgpool", kernel: 2, stride: 1 },
    { type: "flatten" },
    { type: "dense", out: 3 }
  ]
}

/** Strides whose dilated gradient overhangs the kernel (cropped) and a padding beyond k − 1. */
export const cnnStrideArch: Arch = {
  type: "sequential",
  input: [2, 6, 6],
  layers: [
    { type: "conv2d", out: 3, kernel: 3, padding: 1 },
    { type: "relu" },
    { type: "conv2d", out: 3, kernel: 1, padding: 1 },
    { type: "relu" },
    { type: "conv2d", out: 3, kernel: 3, stride: 2, padding: 1 },
    { type: "relu" },
    { type: "conv2d", out: 2, kernel: 2, stride: 2 },
    { type: "flatten" },
    { type: "dense", out: 3 }
  ]
}

export const mlpArch: Arch = { type: "mlp", layers: [7, 6, 5, 3], activation: "relu" }

export const mlpNormArch: Arch = { type: "mlp", layers: [7, 6, 5, 3], norm: "batchnorm" }

/** Uniform values in [low, high), seeded. */
export const uniform = (seed: number, n: number, low = -1, high = 1): Float32Array => {
  const rng = Random.make(seed)
  return Float32Array.from({ length: n }, () => rng.uniform(low, high))
}

/** Random parameters (norm weights and running statistics too), so no test passes by symmetry. */
export const randomParams = (network: Network, seed: number): ParamSet =>
  new Map(
    network.params.map((spec, i) => {
      const size = spec.shape.reduce((a, b) => a * b, 1)
      const data =
        spec.role === "running_var" || (spec.role === "weight" && (spec.module === "batchnorm" || spec.module === "layernorm"))
          ? uniform(seed + i, size, 0.5, 1.5)
          : spec.role === "num_batches_tracked"
            ? new Float32Array(1)
            : uniform(seed + i, size, -0.6, 0.6)
      return [spec.name, { shape: spec.shape, data }] as const
    })
  )

/** `n` integer labels in [0, classes). */
export const labels = (seed: number, n: number, classes: number): Int32Array => {
  const rng = Random.make(seed)
  return Int32Array.from({ length: n }, () => rng.int(classes))
}

/** Largest |a − b| / (atol + rtol·|b|); ≤ 1 means every value is within tolerance. */
export const worstError = (a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol: number): number => {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`)
  let worst = 0
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / (atol + rtol * Math.abs(b[i]!)))
  return worst
}
