/**
 * An architecture resolved into a tree of modules with their shapes and parameters.
 *
 * Naming convention — exactly what `model.state_dict()` of the equivalent PyTorch module holds,
 * so checkpoints move between Crucible and PyTorch unchanged:
 * - `mlp`: `self.layers = nn.ModuleList([nn.Linear(w[i], w[i+1]) …])` with the activation applied
 *   functionally, and, with `norm`, `self.norms = nn.ModuleList([...])` after each hidden layer:
 *   `layers.0.weight`, `layers.0.bias`, …, `norms.0.weight`, ….
 * - `sequential`: `self.layers = nn.Sequential(...)`, so a layer's parameters carry its index in
 *   the list, counting parameter-free layers too: `layers.0.weight`, `layers.1.running_mean`.
 *   A residual block is a module with `body` and `shortcut` `nn.Sequential`s:
 *   `layers.4.body.0.weight`, `layers.4.shortcut.0.weight`.
 * - Parameters: `weight` (`nn.Linear` `[out, in]`, `nn.Conv2d` `[out, in, kh, kw]`, norms
 *   `[C]` or, for LayerNorm, the sample shape), `bias`; BatchNorm buffers `running_mean`,
 *   `running_var` `[C]` and `num_batches_tracked` (a scalar, int64 in files).
 *
 * Every shape here is in PyTorch layout; `Layout.ts` is the one place that converts to TF.js's.
 *
 * Activation names (for {@link Forward}'s `capture`) are module paths: `layers.3` is the output
 * of that module (what a PyTorch forward hook sees) and `layers.3:in` its input. An `mlp`'s
 * functional activations are `act.0`, `act.1`, … (after `layers.0`, …); `input` is the input.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type * as Arch from "./Arch.ts"
import { ArchError } from "./ModelError.ts"

/** What a parameter is, which decides its initialisation and its TF.js layout. @category models */
export type ParamRole = "weight" | "bias" | "running_mean" | "running_var" | "num_batches_tracked"

/** How a tensor's PyTorch layout maps to TF.js's (see `Layout.ts`). @category models */
export type ParamLayout = "linear" | "conv" | "sample" | "vector" | "scalar"

/** One named parameter or buffer of a network. @category models */
export interface ParamSpec {
  readonly name: string
  /** PyTorch shape. */
  readonly shape: ReadonlyArray<number>
  readonly role: ParamRole
  readonly layout: ParamLayout
  /** Updated by the optimizer (weights and biases), or a buffer (BatchNorm statistics). */
  readonly trainable: boolean
  /** Kind of module it belongs to, for initialisation. */
  readonly module: "linear" | "conv2d" | "batchnorm" | "layernorm"
  /** Inputs feeding one output (PyTorch's `fan_in`), for weights and biases of linear/conv. */
  readonly fanIn: number
}

/** A module of the resolved tree. Shapes are per sample, PyTorch layout. @category models */
export type Node =
  | { readonly kind: "linear"; readonly path: string; readonly inShape: Shape; readonly outShape: Shape; readonly bias: boolean }
  | {
      readonly kind: "conv2d"
      readonly path: string
      readonly inShape: Shape
      readonly outShape: Shape
      readonly kernel: number
      readonly stride: number
      readonly padding: number
      readonly bias: boolean
    }
  | { readonly kind: "relu" | "flatten"; readonly path: string; readonly inShape: Shape; readonly outShape: Shape }
  | { readonly kind: "maxpool" | "avgpool"; readonly path: string; readonly inShape: Shape; readonly outShape: Shape; readonly kernel: number; readonly stride: number }
  | { readonly kind: "batchnorm"; readonly path: string; readonly inShape: Shape; readonly outShape: Shape; readonly eps: number; readonly momentum: number }
  | { readonly kind: "layernorm"; readonly path: string; readonly inShape: Shape; readonly outShape: Shape; readonly eps: number }
  | {
      readonly kind: "residual"
      readonly path: string
      readonly inShape: Shape
      readonly outShape: Shape
      readonly body: ReadonlyArray<Node>
      readonly shortcut: ReadonlyArray<Node> | undefined
    }

/** A per-sample shape. @category models */
export type Shape = ReadonlyArray<number>

/** A resolved architecture. @category models */
export interface Network {
  readonly arch: Arch.Arch
  /** Per-sample input shape, PyTorch layout (`[features]` or `[C, H, W]`). */
  readonly inputShape: Shape
  /** Per-sample output shape (`[classes]` for classifiers). */
  readonly outputShape: Shape
  readonly nodes: ReadonlyArray<Node>
  /** Every parameter and buffer, in `state_dict` order. */
  readonly params: ReadonlyArray<ParamSpec>
  /** Every name `capture` accepts. */
  readonly activationNames: ReadonlyArray<string>
}

const DEFAULT_EPS = 1e-5
const DEFAULT_MOMENTUM = 0.1

const product = (shape: Shape): number => shape.reduce((a, b) => a * b, 1)
const fmt = (shape: Shape): string => `[${shape.join(", ")}]`

type Build<A> = Effect.Effect<A, ArchError>

const layerNode = (layer: Arch.Layer, path: string, at: string, inShape: Shape): Build<Node> => {
  const fail = (detail: string) => Effect.fail(new ArchError({ path: at, detail }))
  const needsImage = (what: string) =>
    inShape.length === 3 ? undefined : fail(`${what} needs an input of shape [C, H, W], got ${fmt(inShape)}`)
  switch (layer.type) {
    case "dense": {
      if (inShape.length !== 1) return fail(`dense needs a flat input, got ${fmt(inShape)}: add { type: flatten } before it`)
      return Effect.succeed({ kind: "linear", path, inShape, outShape: [layer.out], bias: layer.bias ?? true })
    }
    case "conv2d": {
      const bad = needsImage("conv2d")
      if (bad) return bad
      const [, h, w] = inShape as [number, number, number]
      const stride = layer.stride ?? 1
      const padding = layer.padding ?? 0
      const oh = Math.floor((h + 2 * padding - layer.kernel) / stride) + 1
      const ow = Math.floor((w + 2 * padding - layer.kernel) / stride) + 1
      if (oh < 1 || ow < 1) return fail(`kernel ${layer.kernel} (padding ${padding}) is larger than the input ${fmt(inShape)}`)
      return Effect.succeed({ kind: "conv2d", path, inShape, outShape: [layer.out, oh, ow], kernel: layer.kernel, stride, padding, bias: layer.bias ?? true })
    }
    case "maxpool":
    case "avgpool": {
      const bad = needsImage(layer.type)
      if (bad) return bad
      const [c, h, w] = inShape as [number, number, number]
      const stride = layer.stride ?? layer.kernel
      const oh = Math.floor((h - layer.kernel) / stride) + 1
      const ow = Math.floor((w - layer.kernel) / stride) + 1
      if (oh < 1 || ow < 1) return fail(`pooling kernel ${layer.kernel} is larger than the input ${fmt(inShape)}`)
      return Effect.succeed({ kind: layer.type, path, inShape, outShape: [c, oh, ow], kernel: layer.kernel, stride })
    }
    case "relu":
      return Effect.succeed({ kind: "relu", path, inShape, outShape: inShape })
    case "flatten":
      return Effect.succeed({ kind: "flatten", path, inShape, outShape: [product(inShape)] })
    case "batchnorm":
      return Effect.succeed({ kind: "batchnorm", path, inShape, outShape: inShape, eps: layer.eps ?? DEFAULT_EPS, momentum: layer.momentum ?? DEFAULT_MOMENTUM })
    case "layernorm":
      return Effect.succeed({ kind: "layernorm", path, inShape, outShape: inShape, eps: layer.eps ?? DEFAULT_EPS })
    case "residual":
      return Effect.gen(function* () {
        const body = yield* chain(layer.body, `${path}.body`, `${at}.body`, inShape)
        const shortcut = layer.shortcut === undefined ? undefined : yield* chain(layer.shortcut, `${path}.shortcut`, `${at}.shortcut`, inShape)
        const bodyOut = outOf(body, inShape)
        const shortOut = shortcut === undefined ? inShape : outOf(shortcut, inShape)
        if (fmt(bodyOut) !== fmt(shortOut)) {
          return yield* fail(
            `residual body gives ${fmt(bodyOut)} but the ${shortcut === undefined ? "identity shortcut" : "shortcut"} gives ${fmt(shortOut)}; ` +
              "make them equal (e.g. a conv2d shortcut with the body's channels and stride)"
          )
        }
        return { kind: "residual", path, inShape, outShape: bodyOut, body, shortcut } satisfies Node
      })
  }
}

const outOf = (nodes: ReadonlyArray<Node>, inShape: Shape): Shape => nodes[nodes.length - 1]?.outShape ?? inShape

const chain = (layers: ReadonlyArray<Arch.Layer>, prefix: string, at: string, inShape: Shape): Build<ReadonlyArray<Node>> =>
  Effect.gen(function* () {
    const nodes: Array<Node> = []
    let shape = inShape
    for (const [i, layer] of layers.entries()) {
      const node = yield* layerNode(layer, `${prefix}.${i}`, `${at}[${i}]`, shape)
      nodes.push(node)
      shape = node.outShape
    }
    return nodes
  })

const mlpNodes = (arch: typeof Arch.Mlp.Type): ReadonlyArray<Node> => {
  const nodes: Array<Node> = []
  const bias = arch.bias ?? true
  for (let i = 0; i + 1 < arch.layers.length; i++) {
    const inShape = [arch.layers[i]!]
    const outShape = [arch.layers[i + 1]!]
    nodes.push({ kind: "linear", path: `layers.${i}`, inShape, outShape, bias })
    if (i + 2 < arch.layers.length) {
      if (arch.norm === "batchnorm") nodes.push({ kind: "batchnorm", path: `norms.${i}`, inShape: outShape, outShape, eps: DEFAULT_EPS, momentum: DEFAULT_MOMENTUM })
      if (arch.norm === "layernorm") nodes.push({ kind: "layernorm", path: `norms.${i}`, inShape: outShape, outShape, eps: DEFAULT_EPS })
      nodes.push({ kind: "relu", path: `act.${i}`, inShape: outShape, outShape })
    }
  }
  return nodes
}

const paramsOf = (node: Node, out: Array<ParamSpec>): void => {
  const add = (suffix: string, shape: Shape, role: ParamRole, layout: ParamLayout, module: ParamSpec["module"], fanIn: number) =>
    out.push({ name: `${node.path}.${suffix}`, shape, role, layout, trainable: role === "weight" || role === "bias", module, fanIn })
  switch (node.kind) {
    case "linear": {
      const fanIn = node.inShape[0]!
      add("weight", [node.outShape[0]!, fanIn], "weight", "linear", "linear", fanIn)
      if (node.bias) add("bias", [node.outShape[0]!], "bias", "vector", "linear", fanIn)
      return
    }
    case "conv2d": {
      const cin = node.inShape[0]!
      const fanIn = cin * node.kernel * node.kernel
      add("weight", [node.outShape[0]!, cin, node.kernel, node.kernel], "weight", "conv", "conv2d", fanIn)
      if (node.bias) add("bias", [node.outShape[0]!], "bias", "vector", "conv2d", fanIn)
      return
    }
    case "batchnorm": {
      const c = [node.inShape[0]!]
      add("weight", c, "weight", "vector", "batchnorm", 0)
      add("bias", c, "bias", "vector", "batchnorm", 0)
      add("running_mean", c, "running_mean", "vector", "batchnorm", 0)
      add("running_var", c, "running_var", "vector", "batchnorm", 0)
      add("num_batches_tracked", [], "num_batches_tracked", "scalar", "batchnorm", 0)
      return
    }
    case "layernorm": {
      const layout: ParamLayout = node.inShape.length === 3 ? "sample" : "vector"
      add("weight", node.inShape, "weight", layout, "layernorm", 0)
      add("bias", node.inShape, "bias", layout, "layernorm", 0)
      return
    }
    case "residual":
      for (const child of node.body) paramsOf(child, out)
      for (const child of node.shortcut ?? []) paramsOf(child, out)
      return
    default:
      return
  }
}

const namesOf = (node: Node, out: Array<string>): void => {
  out.push(`${node.path}:in`, node.path)
  if (node.kind === "residual") {
    for (const child of node.body) namesOf(child, out)
    for (const child of node.shortcut ?? []) namesOf(child, out)
  }
}

/** Resolves an architecture: infers every shape, checks the layers fit, lists the parameters. */
export const resolve = (arch: Arch.Arch): Effect.Effect<Network, ArchError> =>
  Effect.gen(function* () {
    let inputShape: Shape
    let nodes: ReadonlyArray<Node>
    if (arch.type === "mlp") {
      inputShape = [arch.layers[0]!]
      nodes = mlpNodes(arch)
    } else {
      if (arch.input.length === 2) {
        return yield* new ArchError({ path: "arch.input", detail: `expected [features] or [C, H, W], got ${fmt(arch.input)}` })
      }
      inputShape = arch.input
      nodes = yield* chain(arch.layers, "layers", "arch.layers", inputShape)
    }
    const params: Array<ParamSpec> = []
    const activationNames: Array<string> = ["input"]
    for (const node of nodes) {
      paramsOf(node, params)
      namesOf(node, activationNames)
    }
    return { arch, inputShape, outputShape: outOf(nodes, inputShape), nodes, params, activationNames }
  })

/** Number of values in a per-sample shape. */
export const sampleSize = product
