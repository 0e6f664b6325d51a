/**
 * Forward passes: {@link apply} builds the TF.js graph of a network over uploaded weights (what
 * training differentiates), {@link forward} runs a parameter set over host data in batches and
 * returns the outputs and any named intermediate activations (for activation matching,
 * distillation hints, RegMean statistics).
 *
 * Inputs are batches in PyTorch layout, `[N, …inputShape]` flattened row-major (an MNIST image
 * batch is `[N, 784]` or `[N, 1, 28, 28]`, the same bytes). Activations come back in PyTorch
 * layout too (`[N, C, H, W]` for images).
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs-core"
import { Effect } from "effect"
import { Backend } from "../backend/Backend.ts"
import * as Layers from "./Layers.ts"
import * as Layout from "./Layout.ts"
import { InputError, type ParamError } from "./ModelError.ts"
import type { Network, Node } from "./Network.ts"
import * as Params from "./Params.ts"
import * as Weights from "./Weights.ts"

/** How {@link apply} runs. @category models */
export interface ApplyOptions {
  /** BatchNorm uses batch statistics (training) or running statistics (evaluation). */
  readonly training: boolean
  /** Activation names to return (see `Network.ts`); captured tensors stay in TF.js layout. */
  readonly capture?: ReadonlySet<string>
  /** Receives each training-mode BatchNorm's batch statistics; the receiver disposes them. */
  readonly onBatchStats?: (path: string, stats: Layers.BatchStats) => void
}

/** What {@link apply} returns: the output and the captured activations (TF.js layout). @category models */
export interface Applied {
  readonly output: tf.Tensor
  readonly activations: ReadonlyMap<string, tf.Tensor>
}

interface Context {
  readonly weights: Weights.TfWeights
  readonly options: ApplyOptions
  readonly captured: Map<string, tf.Tensor>
}

const weight = (ctx: Context, name: string): tf.Tensor => {
  const t = ctx.weights.get(name)
  if (t === undefined) throw new Error(`Forward.apply: weight "${name}" was not uploaded`)
  return t
}

const optionalWeight = (ctx: Context, name: string): tf.Tensor1D | undefined => ctx.weights.get(name) as tf.Tensor1D | undefined

/** The input batch `[N, sampleSize]` (PyTorch layout) as the graph's input (NHWC for images). */
export const inputTensor = (network: Network, x: tf.Tensor): tf.Tensor => {
  const shape = network.inputShape
  const n = x.shape[0]!
  if (shape.length === 1) return x.rank === 2 ? x : tf.reshape(x, [n, shape[0]!])
  const [c, h, w] = shape as [number, number, number]
  return c === 1 ? tf.reshape(x, [n, h, w, 1]) : tf.transpose(tf.reshape(x, [n, c, h, w]), Layout.NCHW_TO_NHWC as Array<number>)
}

const record = (ctx: Context, name: string, t: tf.Tensor): void => {
  if (ctx.options.capture?.has(name) === true) ctx.captured.set(name, t)
}

// `fromData`: the tensor depends on no parameter, so the next layer with weights skips its input gradient.
const runNode = (ctx: Context, node: Node, x: tf.Tensor, fromData: boolean): tf.Tensor => {
  record(ctx, `${node.path}:in`, x)
  const y = evaluateNode(ctx, node, x, fromData)
  record(ctx, node.path, y)
  return y
}

const evaluateNode = (ctx: Context, node: Node, x: tf.Tensor, fromData: boolean): tf.Tensor => {
  switch (node.kind) {
    case "linear":
      return Layers.dense(x as tf.Tensor2D, weight(ctx, `${node.path}.weight`) as tf.Tensor2D, optionalWeight(ctx, `${node.path}.bias`), !fromData)
    case "conv2d":
      return Layers.conv2d(x as tf.Tensor4D, weight(ctx, `${node.path}.weight`) as tf.Tensor4D, optionalWeight(ctx, `${node.path}.bias`), node, !fromData)
    case "relu":
      return Layers.relu(x)
    case "maxpool":
      return Layers.maxPool(x as tf.Tensor4D, node.kernel, node.stride)
    case "avgpool":
      return Layers.avgPool(x as tf.Tensor4D, node.kernel, node.stride)
    case "flatten":
      return Layers.flatten(x)
    case "layernorm":
      return Layers.layerNorm(x, weight(ctx, `${node.path}.weight`), weight(ctx, `${node.path}.bias`), node.eps)
    case "batchnorm": {
      const gamma = weight(ctx, `${node.path}.weight`) as tf.Tensor1D
      const beta = weight(ctx, `${node.path}.bias`) as tf.Tensor1D
      if (ctx.options.training) {
        const onStats = ctx.options.onBatchStats
        return Layers.batchNormTrain(x, gamma, beta, node.eps, onStats === undefined ? undefined : (stats) => onStats(node.path, stats))
      }
      const mean = weight(ctx, `${node.path}.running_mean`) as tf.Tensor1D
      const variance = weight(ctx, `${node.path}.running_var`) as tf.Tensor1D
      return Layers.batchNormEval(x, mean, variance, gamma, beta, node.eps)
    }
    case "residual": {
      const body = runChain(ctx, node.body, x, fromData)
      const shortcut = node.shortcut === undefined ? x : runChain(ctx, node.shortcut, x, fromData).output
      return Layers.add(body.output, shortcut)
    }
  }
}

const runChain = (ctx: Context, nodes: ReadonlyArray<Node>, x: tf.Tensor, fromData: boolean): { readonly output: tf.Tensor; readonly fromData: boolean } => {
  let h = x
  let data = fromData
  for (const node of nodes) {
    h = runNode(ctx, node, h, data)
    data = data && !hasParams(node)
  }
  return { output: h, fromData: data }
}

const hasParams = (node: Node): boolean =>
  node.kind === "linear" || node.kind === "conv2d" || node.kind === "batchnorm" || node.kind === "layernorm" || node.kind === "residual"

/**
 * The network's graph over `x` (`[N, sampleSize]`, PyTorch layout) and uploaded `weights`.
 * Call it inside `tf.tidy` / `tf.variableGrads`; it creates tensors but disposes none.
 */
export const apply = (network: Network, weights: Weights.TfWeights, x: tf.Tensor, options: ApplyOptions): Applied => {
  const ctx: Context = { weights, options, captured: new Map() }
  const input = inputTensor(network, x)
  record(ctx, "input", input)
  return { output: runChain(ctx, network.nodes, input, true).output, activations: ctx.captured }
}

/** Options of {@link forward}. @category models */
export interface ForwardOptions {
  /** Activation names to return, in PyTorch layout. */
  readonly capture?: ReadonlyArray<string>
  /** Samples per batch (bounds memory); default 256. */
  readonly batchSize?: number
  /** `eval` (default) uses BatchNorm running statistics, `train` batch statistics. */
  readonly mode?: "eval" | "train"
}

/** What {@link forward} returns, all in PyTorch layout. @category models */
export interface ForwardResult {
  readonly output: Layout.HostTensor
  readonly activations: ReadonlyMap<string, Layout.HostTensor>
}

/** Checks a host batch against the network: returns the number of samples. */
export const checkInput = (network: Network, x: Layout.HostTensor): Effect.Effect<number, InputError> => {
  const size = network.inputShape.reduce((a, b) => a * b, 1)
  const n = x.shape[0] ?? 0
  const per = x.shape.slice(1).reduce((a, b) => a * b, 1)
  if (x.shape.length < 2 || per !== size) {
    return Effect.fail(new InputError({ detail: `expected a batch [N, ${network.inputShape.join(", ")}] (or [N, ${size}]), got [${x.shape.join(", ")}]` }))
  }
  if (x.data.length !== n * size) return Effect.fail(new InputError({ detail: `shape [${x.shape.join(", ")}] needs ${n * size} values, got ${x.data.length}` }))
  if (n === 0) return Effect.fail(new InputError({ detail: "the batch is empty" }))
  return Effect.succeed(n)
}

const concatRows = (parts: ReadonlyArray<Layout.HostTensor>, n: number): Layout.HostTensor => {
  const rowShape = parts[0]?.shape.slice(1) ?? []
  const row = rowShape.reduce((a, b) => a * b, 1)
  const data = new Float32Array(n * row)
  let offset = 0
  for (const part of parts) {
    data.set(part.data, offset)
    offset += part.data.length
  }
  return { shape: [n, ...rowShape], data }
}

/**
 * Reads tensors to the host with `await tensor.data()` (webgpu has no synchronous read in Node;
 * on cpu/wasm it returns the same values as `dataSync`), then disposes them. Copies, so the
 * values never alias a backend's buffer.
 */
export const readAndDispose = (tensors: ReadonlyArray<tf.Tensor>): Effect.Effect<Array<Float32Array>> =>
  Effect.promise(() => Promise.all(tensors.map(async (t) => Float32Array.from((await t.data()) as Float32Array)))).pipe(
    Effect.ensuring(Effect.sync(() => tensors.forEach((t) => t.dispose())))
  )

/**
 * Runs `params` over `x` in batches and returns the output (e.g. logits) and the activations
 * named in `capture`.
 */
export const forward = Effect.fn("Forward.forward")(function* (
  network: Network,
  params: Params.ParamSet,
  x: Layout.HostTensor,
  options: ForwardOptions = {}
): Effect.fn.Return<ForwardResult, InputError | ParamError, Backend> {
  const backend = yield* Backend
  yield* Effect.annotateCurrentSpan("crucible.backend", backend.name)
  const n = yield* checkInput(network, x)
  const valid = yield* Params.validate(network, params)
  const names = options.capture ?? []
  const known = new Set(network.activationNames)
  const unknown = names.filter((name) => !known.has(name))
  if (unknown.length > 0) {
    return yield* new InputError({ detail: `unknown activation ${unknown.map((u) => `"${u}"`).join(", ")}; known: ${network.activationNames.slice(0, 12).join(", ")}${network.activationNames.length > 12 ? ", …" : ""}` })
  }
  const batchSize = Math.max(1, options.batchSize ?? 256)
  const size = network.inputShape.reduce((a, b) => a * b, 1)
  const capture = new Set(names)
  return yield* Effect.acquireUseRelease(
    Effect.sync(() => Weights.upload(network, valid)),
    (weights) =>
      Effect.gen(function* () {
        const outputs: Array<Layout.HostTensor> = []
        const activations = new Map<string, Array<Layout.HostTensor>>(names.map((name) => [name, []]))
        for (let start = 0; start < n; start += batchSize) {
          const end = Math.min(n, start + batchSize)
          // The batch's output and captures outlive the tidy, are read asynchronously, then disposed.
          let captured: Array<string> = []
          const kept = tf.tidy(() => {
            const batch = tf.tensor2d(x.data.subarray(start * size, end * size), [end - start, size])
            const result = apply(network, weights, batch, { training: options.mode === "train", capture })
            captured = Array.from(result.activations.keys())
            // clones (no copy: the same data) so that disposing them never frees a tensor made outside
            return [result.output, ...result.activations.values()].map((t) => t.clone())
          })
          const shapes = kept.map((t) => t.shape)
          const host = (yield* readAndDispose(kept)).map((data, i) => Layout.activationToTorch({ shape: shapes[i]!, data }))
          outputs.push(host[0]!)
          captured.forEach((name, i) => activations.get(name)?.push(host[i + 1]!))
        }
        return {
          output: concatRows(outputs, n),
          activations: new Map(Array.from(activations, ([name, parts]) => [name, concatRows(parts, n)] as const))
        }
      }),
    (weights) => Effect.sync(() => Weights.dispose(weights))
  )
})
