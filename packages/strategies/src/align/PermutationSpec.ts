/**
 * Which axes of which tensors move together. A hidden unit of a layer is a row of its weight, an
 * entry of its bias, an entry of each norm parameter that follows it, and a column of the next
 * layer's weight; permuting all of them by one permutation leaves the network's function intact.
 *
 * A spec maps each permutation name to the (tensor, axis) pairs it acts on. An axis may hold each
 * unit as a block: after a channels-first flatten, channel c of a C×H×W map becomes the features
 * `c·H·W … c·H·W + H·W − 1` of the next dense layer, i.e. the axis reads as `[outer, units, inner]`
 * with `inner = H·W`; channels-last (TF.js) order is `outer = H·W`, `inner = 1`.
 *
 * Specs come from the builders here (`chain`, `mlp`, `residual`) or are written by hand (in YAML,
 * decoded with the `PermutationSpec` schema); `resolve` checks either against real tensors.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import { SpecMismatch } from "./AlignError.ts"
import { formatShape, type Params } from "./Params.ts"

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

/** One axis of one tensor, viewed as `[outer, units, inner]` (both default 1). @category schemas */
export const AxisRef = Schema.Struct({
  tensor: Schema.String,
  axis: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  outer: Schema.optional(PositiveInt),
  inner: Schema.optional(PositiveInt)
})

/** @category models */
export type AxisRef = typeof AxisRef.Type

/**
 * Permutation name → the axes it permutes, e.g. in YAML
 * `P_layers.0: [{ tensor: layers.0.weight, axis: 0 }, { tensor: layers.0.bias, axis: 0 }, { tensor: layers.1.weight, axis: 1 }]`.
 *
 * @category schemas
 */
export const PermutationSpec = Schema.Record(Schema.String, Schema.Array(AxisRef).check(Schema.isMinLength(1)))

/** @category models */
export type PermutationSpec = typeof PermutationSpec.Type

/** Decodes a hand-written spec (parsed YAML or JSON). @category decoding */
export const decode = Schema.decodeUnknownEffect(PermutationSpec)

// ---------------------------------------------------------------------------------------------
// Resolution against tensors

/** An axis with its block layout made explicit. @category models */
export interface ResolvedAxis {
  readonly permutation: string
  readonly tensor: string
  readonly axis: number
  readonly outer: number
  readonly inner: number
}

/** A permutation with its size (the number of units it permutes). @category models */
export interface ResolvedPermutation {
  readonly name: string
  readonly size: number
  readonly axes: ReadonlyArray<ResolvedAxis>
}

/** A spec checked against a parameter set. @category models */
export interface Resolved {
  /** In the spec's key order. */
  readonly permutations: ReadonlyArray<ResolvedPermutation>
  /** For each permuted tensor, its permuted axes. */
  readonly byTensor: ReadonlyMap<string, ReadonlyArray<ResolvedAxis>>
}

/**
 * Checks the spec against `params`: every tensor exists, every axis is in range, every axis length
 * is `outer × size × inner` with one `size` per permutation, and no axis is claimed twice. Fails
 * with `SpecMismatch` naming the permutation, tensor and axis at fault.
 *
 * @category validation
 */
export const resolve = (spec: PermutationSpec, params: Params): Effect.Effect<Resolved, SpecMismatch> =>
  Effect.suspend(() => {
    const permutations: Array<ResolvedPermutation> = []
    const byTensor = new Map<string, Array<ResolvedAxis>>()
    const claimed = new Map<string, string>()
    for (const [name, refs] of Object.entries(spec)) {
      if (refs.length === 0) {
        return Effect.fail(new SpecMismatch({ permutation: name, tensor: "", detail: "lists no axes; give at least one (tensor, axis)" }))
      }
      let size = -1
      let sizeFrom = ""
      const axes: Array<ResolvedAxis> = []
      for (const ref of refs) {
        const fail = (detail: string) => Effect.fail(new SpecMismatch({ permutation: name, tensor: ref.tensor, axis: ref.axis, detail }))
        const param = params.get(ref.tensor)
        if (param === undefined) return fail("no such tensor in the parameter set; check the layer names")
        const rank = param.shape.length
        if (!Number.isInteger(ref.axis) || ref.axis < 0 || ref.axis >= rank) {
          return fail(`axis out of range for shape ${formatShape(param.shape)} (rank ${rank})`)
        }
        const outer = ref.outer ?? 1
        const inner = ref.inner ?? 1
        if (!Number.isInteger(outer) || outer < 1 || !Number.isInteger(inner) || inner < 1) {
          return fail(`outer (${outer}) and inner (${inner}) must be positive integers`)
        }
        const length = param.shape[ref.axis]!
        if (length % (outer * inner) !== 0) {
          return fail(`axis length ${length} is not a multiple of outer × inner = ${outer * inner}`)
        }
        const units = length / (outer * inner)
        if (size === -1) {
          size = units
          sizeFrom = `${ref.tensor} axis ${ref.axis}`
        } else if (units !== size) {
          return fail(`permutes ${units} units here but ${size} at ${sizeFrom}; one permutation has one size`)
        }
        const key = `${ref.tensor}\u0000${ref.axis}`
        const owner = claimed.get(key)
        if (owner !== undefined) {
          return fail(owner === name ? "listed twice in this permutation" : `already permuted by permutation "${owner}"; an axis follows one permutation`)
        }
        claimed.set(key, name)
        const resolved: ResolvedAxis = { permutation: name, tensor: ref.tensor, axis: ref.axis, outer, inner }
        axes.push(resolved)
        const list = byTensor.get(ref.tensor)
        if (list === undefined) byTensor.set(ref.tensor, [resolved])
        else list.push(resolved)
      }
      permutations.push({ name, size, axes })
    }
    return Effect.succeed({ permutations, byTensor })
  })

// ---------------------------------------------------------------------------------------------
// Builders

/**
 * One element of a sequential description. A `Weight` is a dense `[out, in]` or conv
 * `[out, in, kh, kw]` layer (with `.weight`, optionally `.bias`); a `Norm` is a BatchNorm or
 * LayerNorm over the channels it follows; a `Flatten` turns a C-channel map into C·spatial features.
 *
 * @category builders
 */
export type Layer =
  | { readonly _tag: "Weight"; readonly name: string; readonly bias: boolean }
  | { readonly _tag: "Norm"; readonly name: string; readonly params: ReadonlyArray<string> }
  | { readonly _tag: "Flatten"; readonly spatial: number; readonly channelsLast: boolean }

/** A dense layer `name.weight` `[out, in]` (+ `name.bias` unless `bias: false`). @category builders */
export const linear = (name: string, options?: { readonly bias?: boolean }): Layer => ({
  _tag: "Weight",
  name,
  bias: options?.bias ?? true
})

/** A conv layer `name.weight` `[out, in, kh, kw]` (+ `name.bias` unless `bias: false`). @category builders */
export const conv: (name: string, options?: { readonly bias?: boolean }) => Layer = linear

/** BatchNorm: `weight`, `bias`, `running_mean`, `running_var` follow their channel (`num_batches_tracked` is a scalar). @category builders */
export const batchNorm = (name: string): Layer => ({
  _tag: "Norm",
  name,
  params: ["weight", "bias", "running_mean", "running_var"]
})

/** LayerNorm over the channel axis: `weight`, `bias` (none when `affine: false`). @category builders */
export const layerNorm = (name: string, options?: { readonly affine?: boolean }): Layer => ({
  _tag: "Norm",
  name,
  params: options?.affine === false ? [] : ["weight", "bias"]
})

/**
 * Flatten of a `[C, H, W]` map (`spatial = H·W`) into a vector: channels-first (PyTorch) by
 * default, `channelsLast: true` for `[H, W, C]` order.
 *
 * @category builders
 */
export const flatten = (spatial: number, options?: { readonly channelsLast?: boolean }): Layer => ({
  _tag: "Flatten",
  spatial,
  channelsLast: options?.channelsLast ?? false
})

/** A residual block: `main` and, when the stream changes width or basis, a projection `shortcut`. @category builders */
export interface ResidualBlock {
  readonly main: ReadonlyArray<Layer>
  readonly shortcut?: ReadonlyArray<Layer>
}

/** A residual network: a stem writes the stream, blocks add to it, a head reads it. @category builders */
export interface ResidualNetwork {
  readonly stem: ReadonlyArray<Layer>
  readonly blocks: ReadonlyArray<ResidualBlock>
  readonly head: ReadonlyArray<Layer>
}

type MutableSpec = Record<string, Array<AxisRef>>

/** The permutation a weight layer's outputs get when nothing else decides: `P_<layer name>`. */
const permutationAfter = (layer: { readonly name: string }): string => `P_${layer.name}`

const lastWeight = (layers: ReadonlyArray<Layer>) => layers.findLast((layer) => layer._tag === "Weight")

const add = (spec: MutableSpec, permutation: string, tensor: string, axis: number, outer = 1, inner = 1): void => {
  const ref: AxisRef = { tensor, axis, ...(outer === 1 ? {} : { outer }), ...(inner === 1 ? {} : { inner }) }
  const list = spec[permutation]
  if (list === undefined) spec[permutation] = [ref]
  else list.push(ref)
}

/**
 * Walks a sequential path whose input units follow `input` and whose last weight layer's outputs
 * follow `output` (`null`: not permuted, e.g. network input or logits); every earlier weight layer
 * gets its own permutation.
 */
const walk = (spec: MutableSpec, layers: ReadonlyArray<Layer>, input: string | null, output: string | null): void => {
  const last = lastWeight(layers)
  let current = input
  let outer = 1
  let inner = 1
  for (const layer of layers) {
    switch (layer._tag) {
      case "Flatten": {
        if (layer.channelsLast) outer *= layer.spatial
        else inner *= layer.spatial
        break
      }
      case "Norm": {
        if (current !== null) for (const p of layer.params) add(spec, current, `${layer.name}.${p}`, 0, outer, inner)
        break
      }
      case "Weight": {
        if (current !== null) add(spec, current, `${layer.name}.weight`, 1, outer, inner)
        const next = layer === last ? output : permutationAfter(layer)
        if (next !== null) {
          add(spec, next, `${layer.name}.weight`, 0)
          if (layer.bias) add(spec, next, `${layer.name}.bias`, 0)
        }
        current = next
        outer = 1
        inner = 1
        break
      }
    }
  }
}

/**
 * A sequential network (MLP, or a CNN of conv layers, norms and a flatten into dense layers):
 * one permutation `P_<name>` after every weight layer but the last.
 *
 * @category builders
 */
export const chain = (layers: ReadonlyArray<Layer>): PermutationSpec => {
  const spec: MutableSpec = {}
  walk(spec, layers, null, null)
  return spec
}

/** An MLP from its dense layer names, e.g. `mlp(["layers.0", "layers.1", "layers.2"])`. @category builders */
export const mlp = (names: ReadonlyArray<string>, options?: { readonly bias?: boolean }): PermutationSpec =>
  chain(names.map((name) => linear(name, options)))

/**
 * A residual network. The residual stream has one permutation shared by the stem, every block's
 * last weight layer (and the norms after it) and the head's first layer, named after the layer
 * that opens it; a block with a projection `shortcut` opens a new stream named after the
 * shortcut's last weight layer. Norms at the start of a block (pre-norm) follow the stream.
 *
 * @category builders
 */
export const residual = (network: ResidualNetwork): PermutationSpec => {
  const spec: MutableSpec = {}
  const stemOut = lastWeight(network.stem)
  let stream = stemOut === undefined ? null : permutationAfter(stemOut)
  walk(spec, network.stem, null, stream)
  for (const block of network.blocks) {
    let next = stream
    if (block.shortcut !== undefined) {
      const projection = lastWeight(block.shortcut)
      if (projection !== undefined) next = permutationAfter(projection)
      walk(spec, block.shortcut, stream, next)
    }
    walk(spec, block.main, stream, next)
    stream = next
  }
  walk(spec, network.head, stream, null)
  return spec
}
