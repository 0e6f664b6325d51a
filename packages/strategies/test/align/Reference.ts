/**
 * Test support: small random models in PyTorch naming and layout, and float64 forward passes
 * written from the PyTorch definitions of each layer (independent of the code under test), so a
 * permuted model can be checked to compute the same function.
 */
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import type { Param, Params } from "../../src/align/Params.ts"
import * as Spec from "../../src/align/PermutationSpec.ts"
import * as Random from "../../src/align/internal/Random.ts"

// ---------------------------------------------------------------------------------------------
// Layers, float64

/** A feature map `[channels, height, width]`, row-major. */
export interface Map3 {
  readonly c: number
  readonly h: number
  readonly w: number
  readonly data: Float64Array
}

const get = (params: Params, name: string): Param => {
  const p = params.get(name)
  if (p === undefined) throw new Error(`test model lacks ${name}`)
  return p
}

/** `y = W x + b` with `W` `[out, in]`. */
export const linear = (params: Params, prefix: string, x: Float64Array, bias = true): Float64Array => {
  const w = get(params, `${prefix}.weight`)
  const [out, inp] = w.shape as [number, number]
  if (x.length !== inp) throw new Error(`${prefix}: input ${x.length} ≠ ${inp}`)
  const b = bias ? get(params, `${prefix}.bias`).data : undefined
  const y = new Float64Array(out)
  for (let o = 0; o < out; o++) {
    let s = b === undefined ? 0 : b[o]!
    for (let i = 0; i < inp; i++) s += w.data[o * inp + i]! * x[i]!
    y[o] = s
  }
  return y
}

/** `torch.nn.functional.conv2d` with square stride and zero padding. */
export const conv2d = (params: Params, prefix: string, x: Map3, stride: number, padding: number, bias = false): Map3 => {
  const w = get(params, `${prefix}.weight`)
  const [out, inp, kh, kw] = w.shape as [number, number, number, number]
  if (x.c !== inp) throw new Error(`${prefix}: ${x.c} channels ≠ ${inp}`)
  const b = bias ? get(params, `${prefix}.bias`).data : undefined
  const h = Math.floor((x.h + 2 * padding - kh) / stride) + 1
  const wd = Math.floor((x.w + 2 * padding - kw) / stride) + 1
  const y = new Float64Array(out * h * wd)
  for (let o = 0; o < out; o++) {
    for (let r = 0; r < h; r++) {
      for (let c = 0; c < wd; c++) {
        let s = b === undefined ? 0 : b[o]!
        for (let i = 0; i < inp; i++) {
          for (let u = 0; u < kh; u++) {
            const yy = r * stride - padding + u
            if (yy < 0 || yy >= x.h) continue
            for (let v = 0; v < kw; v++) {
              const xx = c * stride - padding + v
              if (xx < 0 || xx >= x.w) continue
              s += w.data[((o * inp + i) * kh + u) * kw + v]! * x.data[(i * x.h + yy) * x.w + xx]!
            }
          }
        }
        y[(o * h + r) * wd + c] = s
      }
    }
  }
  return { c: out, h, w: wd, data: y }
}

/** BatchNorm2d in eval mode: `(x − running_mean) / √(running_var + ε) · weight + bias`. */
export const batchNorm = (params: Params, prefix: string, x: Map3, eps = 1e-5): Map3 => {
  const weight = get(params, `${prefix}.weight`).data
  const bias = get(params, `${prefix}.bias`).data
  const mean = get(params, `${prefix}.running_mean`).data
  const variance = get(params, `${prefix}.running_var`).data
  const plane = x.h * x.w
  const y = new Float64Array(x.data.length)
  for (let c = 0; c < x.c; c++) {
    const scale = weight[c]! / Math.sqrt(variance[c]! + eps)
    for (let k = 0; k < plane; k++) y[c * plane + k] = (x.data[c * plane + k]! - mean[c]!) * scale + bias[c]!
  }
  return { ...x, data: y }
}

/** LayerNorm over a vector: biased variance, as PyTorch. */
export const layerNorm = (params: Params, prefix: string, x: Float64Array, eps = 1e-5): Float64Array => {
  const weight = get(params, `${prefix}.weight`).data
  const bias = get(params, `${prefix}.bias`).data
  const mean = x.reduce((s, v) => s + v, 0) / x.length
  const variance = x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length
  return x.map((v, i) => ((v - mean) / Math.sqrt(variance + eps)) * weight[i]! + bias[i]!)
}

export const relu = (x: Float64Array): Float64Array => x.map((v) => Math.max(0, v))
export const reluMap = (x: Map3): Map3 => ({ ...x, data: relu(x.data) })
export const addMaps = (x: Map3, y: Map3): Map3 => ({ ...x, data: x.data.map((v, i) => v + y.data[i]!) })
export const addVectors = (x: Float64Array, y: Float64Array): Float64Array => x.map((v, i) => v + y[i]!)
export const meanPool = (x: Map3): Float64Array => {
  const plane = x.h * x.w
  return Float64Array.from({ length: x.c }, (_, c) => x.data.subarray(c * plane, (c + 1) * plane).reduce((s, v) => s + v, 0) / plane)
}

// ---------------------------------------------------------------------------------------------
// Models: parameters, permutation spec, forward pass

/** A test network: its parameters' generator, its spec, its forward pass and input size. */
export interface Network {
  readonly spec: Spec.PermutationSpec
  readonly params: (seed: number) => Params
  readonly forward: (params: Params, input: Float64Array) => Float64Array
  /** Input length; image networks read it as 1×28×28. */
  readonly inputSize: number
}

type ParamList = Array<[string, ReadonlyArray<number>, number]>

/** Normal weights with the given scales; `running_var` gets positive values, scalars get 0. */
const generate = (seed: number, list: ParamList): Params => {
  const random = Random.make(seed)
  return new Map(list.map(([name, shape, scale]) => {
    const count = shape.reduce((n, d) => n * d, 1)
    const data = Random.normals(random, count, scale)
    if (name.endsWith("running_var")) for (let k = 0; k < count; k++) data[k] = 0.5 + Math.abs(data[k]!)
    if (name.endsWith("num_batches_tracked")) data.fill(0)
    return [name, { shape, data }]
  }))
}

const batchNormParams = (prefix: string, channels: number): ParamList => [
  [`${prefix}.weight`, [channels], 0.5],
  [`${prefix}.bias`, [channels], 0.2],
  [`${prefix}.running_mean`, [channels], 0.3],
  [`${prefix}.running_var`, [channels], 1],
  [`${prefix}.num_batches_tracked`, [], 0]
]

/** A ReLU MLP `layers.{i}`. */
export const mlp = (widths: ReadonlyArray<number>): Network => {
  const names = widths.slice(1).map((_, i) => `layers.${i}`)
  return {
    spec: Spec.mlp(names),
    inputSize: widths[0]!,
    params: (seed) => generate(seed, names.flatMap((name, i): ParamList => [
      [`${name}.weight`, [widths[i + 1]!, widths[i]!], 1 / Math.sqrt(widths[i]!)],
      [`${name}.bias`, [widths[i + 1]!], 0.1]
    ])),
    forward: (params, input) => names.reduce((x, name, i) => {
      const y = linear(params, name, x)
      return i === names.length - 1 ? y : relu(y)
    }, input)
  }
}

const image = (input: Float64Array): Map3 => ({ c: 1, h: 28, w: 28, data: input })

/** conv(1→4, 3×3) → ReLU → conv(4→6, 3×3, stride 2) → ReLU → flatten → fc(1176→16) → ReLU → fc(16→10). */
export const cnn: Network = {
  spec: Spec.chain([Spec.conv("conv1"), Spec.conv("conv2"), Spec.flatten(14 * 14), Spec.linear("fc1"), Spec.linear("fc2")]),
  inputSize: 784,
  params: (seed) => generate(seed, [
    ["conv1.weight", [4, 1, 3, 3], 0.3], ["conv1.bias", [4], 0.1],
    ["conv2.weight", [6, 4, 3, 3], 0.2], ["conv2.bias", [6], 0.1],
    ["fc1.weight", [16, 6 * 14 * 14], 0.03], ["fc1.bias", [16], 0.1],
    ["fc2.weight", [10, 16], 0.25], ["fc2.bias", [10], 0.1]
  ]),
  forward: (params, input) => {
    const h1 = reluMap(conv2d(params, "conv1", image(input), 1, 1, true))
    const h2 = reluMap(conv2d(params, "conv2", h1, 2, 1, true))
    return linear(params, "fc2", relu(linear(params, "fc1", h2.data)))
  }
}

const basicBlockParams = (prefix: string, inp: number, out: number, projection: boolean): ParamList => [
  [`${prefix}.conv1.weight`, [out, inp, 3, 3], 0.25], ...batchNormParams(`${prefix}.bn1`, out),
  [`${prefix}.conv2.weight`, [out, out, 3, 3], 0.2], ...batchNormParams(`${prefix}.bn2`, out),
  ...(projection ? [[`${prefix}.downsample.0.weight`, [out, inp, 1, 1], 0.4] as [string, ReadonlyArray<number>, number], ...batchNormParams(`${prefix}.downsample.1`, out)] : [])
]

const basicBlock = (params: Params, prefix: string, x: Map3, stride: number, projection: boolean): Map3 => {
  const h = reluMap(batchNorm(params, `${prefix}.bn1`, conv2d(params, `${prefix}.conv1`, x, stride, 1)))
  const main = batchNorm(params, `${prefix}.bn2`, conv2d(params, `${prefix}.conv2`, h, 1, 1))
  const shortcut = projection ? batchNorm(params, `${prefix}.downsample.1`, conv2d(params, `${prefix}.downsample.0`, x, stride, 0)) : x
  return reluMap(addMaps(main, shortcut))
}

const mainPath = (prefix: string): Array<Spec.Layer> => [
  Spec.conv(`${prefix}.conv1`, { bias: false }), Spec.batchNorm(`${prefix}.bn1`),
  Spec.conv(`${prefix}.conv2`, { bias: false }), Spec.batchNorm(`${prefix}.bn2`)
]

/**
 * A torchvision-style ResNet: stem conv+BN, an identity block (8 ch), a stride-2 block with a
 * projection shortcut (8→16), another identity block, global average pool, LayerNorm, fc.
 */
export const resnet: Network = {
  spec: Spec.residual({
    stem: [Spec.conv("conv1", { bias: false }), Spec.batchNorm("bn1")],
    blocks: [
      { main: mainPath("layer1.0") },
      { main: mainPath("layer2.0"), shortcut: [Spec.conv("layer2.0.downsample.0", { bias: false }), Spec.batchNorm("layer2.0.downsample.1")] },
      { main: mainPath("layer2.1") }
    ],
    head: [Spec.layerNorm("norm"), Spec.linear("fc")]
  }),
  inputSize: 784,
  params: (seed) => generate(seed, [
    ["conv1.weight", [8, 1, 3, 3], 0.4], ...batchNormParams("bn1", 8),
    ...basicBlockParams("layer1.0", 8, 8, false),
    ...basicBlockParams("layer2.0", 8, 16, true),
    ...basicBlockParams("layer2.1", 16, 16, false),
    ["norm.weight", [16], 0.5], ["norm.bias", [16], 0.2],
    ["fc.weight", [10, 16], 0.3], ["fc.bias", [10], 0.1]
  ]),
  forward: (params, input) => {
    let x = reluMap(batchNorm(params, "bn1", conv2d(params, "conv1", image(input), 1, 1)))
    x = basicBlock(params, "layer1.0", x, 1, false)
    x = basicBlock(params, "layer2.0", x, 2, true)
    x = basicBlock(params, "layer2.1", x, 1, false)
    return linear(params, "fc", layerNorm(params, "norm", meanPool(x)))
  }
}

/** A pre-norm residual MLP (transformer-style): `x += fc2(ReLU(fc1(LayerNorm(x))))` twice, then LayerNorm, head. */
export const preNormMlp: Network = {
  spec: Spec.residual({
    stem: [Spec.linear("embed")],
    blocks: [0, 1].map((i) => ({ main: [Spec.layerNorm(`blocks.${i}.norm`), Spec.linear(`blocks.${i}.fc1`), Spec.linear(`blocks.${i}.fc2`)] })),
    head: [Spec.layerNorm("norm"), Spec.linear("head")]
  }),
  inputSize: 20,
  params: (seed) => generate(seed, [
    ["embed.weight", [12, 20], 0.25], ["embed.bias", [12], 0.1],
    ...[0, 1].flatMap((i): ParamList => [
      [`blocks.${i}.norm.weight`, [12], 0.5], [`blocks.${i}.norm.bias`, [12], 0.2],
      [`blocks.${i}.fc1.weight`, [24, 12], 0.3], [`blocks.${i}.fc1.bias`, [24], 0.1],
      [`blocks.${i}.fc2.weight`, [12, 24], 0.2], [`blocks.${i}.fc2.bias`, [12], 0.1]
    ]),
    ["norm.weight", [12], 0.5], ["norm.bias", [12], 0.2],
    ["head.weight", [5, 12], 0.3], ["head.bias", [5], 0.1]
  ]),
  forward: (params, input) => {
    let x = linear(params, "embed", input)
    for (const i of [0, 1]) {
      const h = relu(linear(params, `blocks.${i}.fc1`, layerNorm(params, `blocks.${i}.norm`, x)))
      x = addVectors(x, linear(params, `blocks.${i}.fc2`, h))
    }
    return linear(params, "head", layerNorm(params, "norm", x))
  }
}

// ---------------------------------------------------------------------------------------------
// Data

/** `count` inputs of `size` uniform in [0, 1). */
export const randomInputs = (seed: number, count: number, size: number): Array<Float64Array> => {
  const random = Random.make(seed)
  return Array.from({ length: count }, () => Float64Array.from({ length: size }, () => random.next()))
}

/** The first `perDigit` rows of each listed digit from the `mnist` package, 784 values in [0, 1]. */
export const mnistRows = (digits: ReadonlyArray<number>, perDigit: number): Array<Float64Array> => {
  const root = path.dirname(createRequire(import.meta.url).resolve("mnist/package.json"))
  return digits.flatMap((digit) => {
    const { data } = JSON.parse(fs.readFileSync(path.join(root, "src", "digits", `${digit}.json`), "utf8")) as { data: Array<number> }
    return Array.from({ length: perDigit }, (_, r) => Float64Array.from(data.slice(r * 784, (r + 1) * 784)))
  })
}

/** A random permutation for every permutation of a resolved spec. */
export const randomPermutations = (seed: number, sizes: ReadonlyArray<{ readonly name: string; readonly size: number }>) => {
  const random = Random.make(seed)
  return new Map(sizes.map(({ name, size }) => [name, Random.permutation(random, size)]))
}

export const maxAbsDifference = (x: Float64Array, y: Float64Array): number =>
  x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0)
