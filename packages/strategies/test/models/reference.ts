/**
 * An independent float64 reference of every layer, written from the PyTorch definitions in
 * PyTorch layout (NCHW, weights `[out, in(, kh, kw)]`) with plain loops: the tests compare
 * Crucible's TF.js graphs and gradients against it.
 */
import type { Network, Node } from "../../src/models/Network.ts"
import type { ParamSet } from "../../src/models/Params.ts"

export interface T64 {
  readonly shape: ReadonlyArray<number>
  readonly data: Float64Array
}

export type Params64 = ReadonlyMap<string, T64>

export const toParams64 = (params: ParamSet): Map<string, T64> =>
  new Map(Array.from(params, ([name, t]) => [name, { shape: t.shape, data: Float64Array.from(t.data) }] as const))

const p = (params: Params64, name: string): Float64Array => {
  const t = params.get(name)
  if (t === undefined) throw new Error(`reference: missing ${name}`)
  return t.data
}

const linear = (x: T64, w: Float64Array, b: Float64Array | undefined, out: number): T64 => {
  const [n, inF] = x.shape as [number, number]
  const y = new Float64Array(n * out)
  for (let s = 0; s < n; s++)
    for (let o = 0; o < out; o++) {
      let acc = b?.[o] ?? 0
      for (let i = 0; i < inF; i++) acc += x.data[s * inF + i]! * w[o * inF + i]!
      y[s * out + o] = acc
    }
  return { shape: [n, out], data: y }
}

const conv2d = (x: T64, w: Float64Array, b: Float64Array | undefined, node: Extract<Node, { kind: "conv2d" }>): T64 => {
  const [n, c, h, wd] = x.shape as [number, number, number, number]
  const [o, oh, ow] = node.outShape as [number, number, number]
  const { kernel: k, stride: s, padding: pad } = node
  const y = new Float64Array(n * o * oh * ow)
  for (let b0 = 0; b0 < n; b0++)
    for (let oc = 0; oc < o; oc++)
      for (let i = 0; i < oh; i++)
        for (let j = 0; j < ow; j++) {
          let acc = b?.[oc] ?? 0
          for (let ic = 0; ic < c; ic++)
            for (let ki = 0; ki < k; ki++)
              for (let kj = 0; kj < k; kj++) {
                const hi = i * s + ki - pad
                const wj = j * s + kj - pad
                if (hi < 0 || hi >= h || wj < 0 || wj >= wd) continue
                acc += x.data[((b0 * c + ic) * h + hi) * wd + wj]! * w[((oc * c + ic) * k + ki) * k + kj]!
              }
          y[((b0 * o + oc) * oh + i) * ow + j] = acc
        }
  return { shape: [n, o, oh, ow], data: y }
}

const pool = (x: T64, kind: "max" | "avg", k: number, s: number): T64 => {
  const [n, c, h, w] = x.shape as [number, number, number, number]
  const oh = Math.floor((h - k) / s) + 1
  const ow = Math.floor((w - k) / s) + 1
  const y = new Float64Array(n * c * oh * ow)
  for (let b = 0; b < n * c; b++)
    for (let i = 0; i < oh; i++)
      for (let j = 0; j < ow; j++) {
        let acc = kind === "max" ? -Infinity : 0
        for (let ki = 0; ki < k; ki++)
          for (let kj = 0; kj < k; kj++) {
            const v = x.data[(b * h + i * s + ki) * w + j * s + kj]!
            acc = kind === "max" ? Math.max(acc, v) : acc + v / (k * k)
          }
        y[(b * oh + i) * ow + j] = acc
      }
  return { shape: [n, c, oh, ow], data: y }
}

const batchNorm = (x: T64, params: Params64, path: string, eps: number, training: boolean): T64 => {
  const n = x.shape[0]!
  const c = x.shape[1]!
  const spatial = x.shape.slice(2).reduce((a, b) => a * b, 1)
  const gamma = p(params, `${path}.weight`)
  const beta = p(params, `${path}.bias`)
  const y = new Float64Array(x.data.length)
  for (let ch = 0; ch < c; ch++) {
    let mean = p(params, `${path}.running_mean`)[ch]!
    let variance = p(params, `${path}.running_var`)[ch]!
    if (training) {
      mean = 0
      for (let b = 0; b < n; b++) for (let q = 0; q < spatial; q++) mean += x.data[(b * c + ch) * spatial + q]!
      mean /= n * spatial
      variance = 0
      for (let b = 0; b < n; b++) for (let q = 0; q < spatial; q++) variance += (x.data[(b * c + ch) * spatial + q]! - mean) ** 2
      variance /= n * spatial
    }
    for (let b = 0; b < n; b++)
      for (let q = 0; q < spatial; q++) {
        const i = (b * c + ch) * spatial + q
        y[i] = ((x.data[i]! - mean) / Math.sqrt(variance + eps)) * gamma[ch]! + beta[ch]!
      }
  }
  return { shape: x.shape, data: y }
}

const layerNorm = (x: T64, params: Params64, path: string, eps: number): T64 => {
  const n = x.shape[0]!
  const size = x.data.length / n
  const gamma = p(params, `${path}.weight`)
  const beta = p(params, `${path}.bias`)
  const y = new Float64Array(x.data.length)
  for (let b = 0; b < n; b++) {
    let mean = 0
    for (let i = 0; i < size; i++) mean += x.data[b * size + i]!
    mean /= size
    let variance = 0
    for (let i = 0; i < size; i++) variance += (x.data[b * size + i]! - mean) ** 2
    variance /= size
    for (let i = 0; i < size; i++) y[b * size + i] = ((x.data[b * size + i]! - mean) / Math.sqrt(variance + eps)) * gamma[i]! + beta[i]!
  }
  return { shape: x.shape, data: y }
}

const runNode = (node: Node, x: T64, params: Params64, training: boolean, acts: Map<string, T64>): T64 => {
  acts.set(`${node.path}:in`, x)
  let y: T64
  switch (node.kind) {
    case "linear":
      y = linear(x, p(params, `${node.path}.weight`), node.bias ? p(params, `${node.path}.bias`) : undefined, node.outShape[0]!)
      break
    case "conv2d":
      y = conv2d(x, p(params, `${node.path}.weight`), node.bias ? p(params, `${node.path}.bias`) : undefined, node)
      break
    case "relu":
      y = { shape: x.shape, data: x.data.map((v) => Math.max(v, 0)) }
      break
    case "maxpool":
      y = pool(x, "max", node.kernel, node.stride)
      break
    case "avgpool":
      y = pool(x, "avg", node.kernel, node.stride)
      break
    case "flatten":
      y = { shape: [x.shape[0]!, x.data.length / x.shape[0]!], data: x.data }
      break
    case "batchnorm":
      y = batchNorm(x, params, node.path, node.eps, training)
      break
    case "layernorm":
      y = layerNorm(x, params, node.path, node.eps)
      break
    case "residual": {
      const body = runChain(node.body, x, params, training, acts)
      const short = node.shortcut === undefined ? x : runChain(node.shortcut, x, params, training, acts)
      y = { shape: body.shape, data: body.data.map((v, i) => v + short.data[i]!) }
      break
    }
  }
  acts.set(node.path, y)
  return y
}

const runChain = (nodes: ReadonlyArray<Node>, x: T64, params: Params64, training: boolean, acts: Map<string, T64>): T64 => {
  let h = x
  for (const node of nodes) h = runNode(node, h, params, training, acts)
  return h
}

/** The network on `x` (`[N, …inputShape]` values, PyTorch layout), in float64. */
export const forward64 = (network: Network, params: Params64, x: ArrayLike<number>, n: number, training = false) => {
  const input: T64 = { shape: [n, ...network.inputShape], data: Float64Array.from(x) }
  const activations = new Map<string, T64>([["input", input]])
  const output = runChain(network.nodes, input, params, training, activations)
  return { output, activations }
}

/** Mean softmax cross-entropy in float64. */
export const crossEntropy64 = (logits: T64, labels: ArrayLike<number>): number => {
  const [n, k] = logits.shape as [number, number]
  let total = 0
  for (let i = 0; i < n; i++) {
    let max = -Infinity
    for (let j = 0; j < k; j++) max = Math.max(max, logits.data[i * k + j]!)
    let sum = 0
    for (let j = 0; j < k; j++) sum += Math.exp(logits.data[i * k + j]! - max)
    total += Math.log(sum) + max - logits.data[i * k + labels[i]!]!
  }
  return total / n
}

/** Central finite-difference gradient of `f` with respect to every value of `params` (a small `h` keeps
 * perturbations from crossing ReLU kinks: random data can put a pre-activation within 1e-6 of 0). */
export const numericGradient = (params: Map<string, T64>, f: () => number, h = 1e-7): Map<string, Float64Array> => {
  const grads = new Map<string, Float64Array>()
  for (const [name, t] of params) {
    const g = new Float64Array(t.data.length)
    for (let i = 0; i < t.data.length; i++) {
      const v = t.data[i]!
      t.data[i] = v + h
      const up = f()
      t.data[i] = v - h
      const down = f()
      t.data[i] = v
      g[i] = (up - down) / (2 * h)
    }
    grads.set(name, g)
  }
  return grads
}
