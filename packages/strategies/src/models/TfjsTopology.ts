/**
 * A Keras / TF.js `Sequential` layers topology (`model.json`'s `modelTopology`) as Crucible's
 * `sequential` architecture, and the renaming of its weights to the PyTorch names and layouts
 * that architecture uses — so a TF.js model runs (and trains) like any other Crucible model.
 *
 * | Keras layer                        | Crucible layers                                   |
 * | ---------------------------------- | ------------------------------------------------- |
 * | `InputLayer`                       | the architecture's `input` (`[H, W, C]` → `[C, H, W]`) |
 * | `Dense` (`relu`, `linear`)         | `dense` (+ `relu`)                                |
 * | `Conv2D` (channels_last, `valid`/`same`) | `conv2d` (+ `relu`)                         |
 * | `MaxPooling2D`, `AveragePooling2D` (`valid`) | `maxpool`, `avgpool`                    |
 * | `BatchNormalization` (channel axis) | `batchnorm` (eps kept, momentum `1 − m`)         |
 * | `Flatten`, `Activation`/`ReLU` (`relu`, `linear`) | `flatten`, `relu` (or nothing)     |
 *
 * A `softmax` on the last layer is dropped: Crucible's outputs are logits, and softmax keeps
 * their order ({@link Converted.outputActivation} records it).
 *
 * TF.js images are NHWC, so a Keras `Flatten` of an image orders features `(h, w, c)`; PyTorch's
 * `nn.Flatten` of the NCHW image orders them `(c, h, w)`. The first `Dense` after a flatten of an
 * image (and any `BatchNormalization` between them) therefore has its input rows permuted here,
 * explicitly: the converted model computes exactly what the TF.js model computes.
 *
 * Kernel layouts change through core's `TfjsLayout` (the one place TF.js meets PyTorch layout).
 *
 * @since 0.1.0
 */
import * as Model from "@crucible/core/model/Model"
import * as TfjsLayout from "@crucible/core/io/tfjs/Layout"
import * as TensorRef from "@crucible/core/tensor/TensorRef"
import { Effect, Schema } from "effect"
import * as Arch from "./Arch.ts"
import { ParamError } from "./ModelError.ts"

/** The metadata key core's TF.js reader stores `modelTopology` under (as JSON). */
export const TOPOLOGY_KEY = "tfjs.modelTopology"

/** A topology that is not a Sequential model of supported layers. @category errors */
export class TfjsTopologyError extends Schema.TaggedError<TfjsTopologyError>()("TfjsTopologyError", {
  /** The model.json (or model) the topology came from. */
  source: Schema.String,
  /** Which layer, e.g. `layers[2] "lstm_1" (LSTM)`, or `modelTopology` for the whole. */
  layer: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `${this.source}: ${this.layer}: ${this.detail}`
  }
}

/** One TF.js weight and the PyTorch parameter it becomes. @category models */
export interface TensorMapping {
  /** TF.js weight name, e.g. `dense_1/kernel`. */
  readonly tfjs: string
  /** Crucible / PyTorch name, e.g. `layers.4.weight`. */
  readonly torch: string
  /**
   * Set on a dense kernel or BatchNorm vector that reads an image flattened in NHWC order:
   * the image's `[H, W, C]`, whose feature order is changed to PyTorch's `(c, h, w)`.
   */
  readonly flattenedFrom?: readonly [number, number, number]
}

/** A converted topology. @category models */
export interface Converted {
  readonly arch: Arch.Arch
  readonly tensors: ReadonlyArray<TensorMapping>
  /** PyTorch buffers TF.js has no weight for (BatchNorm's `num_batches_tracked`), made as 0. */
  readonly synthesized: ReadonlyArray<string>
  /** The last layer's activation when it was dropped (outputs are then logits of it). */
  readonly outputActivation?: "softmax"
}

type Config = Readonly<Record<string, unknown>>
interface KerasLayer {
  readonly className: string
  readonly config: Config
}

const isObject = (v: unknown): v is Config => typeof v === "object" && v !== null && !Array.isArray(v)

/** `modelTopology` may be the model itself or (Keras-converted models) wrap it in `model_config`. */
const sequentialLayers = (topology: unknown): ReadonlyArray<unknown> | string => {
  const model = isObject(topology) && isObject(topology.model_config) ? topology.model_config : topology
  if (!isObject(model)) return "is not a Keras model topology (expected an object with class_name and config)"
  if (model.class_name !== "Sequential") {
    return `is a ${JSON.stringify(model.class_name)} model; only Sequential topologies convert (a functional Model's graph is not a chain of layers)`
  }
  const config = model.config
  const layers = Array.isArray(config) ? config : isObject(config) ? config.layers : undefined
  if (!Array.isArray(layers) || layers.length === 0) return "a Sequential topology needs a non-empty config.layers list"
  return layers
}

/** `3` or `[3, 3]` → 3; anything else (non-square) → undefined. */
const square = (v: unknown): number | undefined => {
  const [a, b] = typeof v === "number" ? [v, v] : Array.isArray(v) && v.length === 2 ? [v[0], v[1]] : [undefined, undefined]
  return Number.isSafeInteger(a) && a === b && (a as number) > 0 ? (a as number) : undefined
}

/** Keras `batch_input_shape` (`[null, …]`) → a per-sample shape in PyTorch layout. */
const inputShapeOf = (config: Config): ReadonlyArray<number> | string | undefined => {
  const batch = config.batch_input_shape ?? config.batch_shape ?? config.batchInputShape
  if (batch === undefined || batch === null) return undefined
  if (!Array.isArray(batch) || batch.length < 2) return `batch_input_shape ${JSON.stringify(batch)} is not [null, …dims]`
  const dims = batch.slice(1)
  if (!dims.every((d) => Number.isSafeInteger(d) && d > 0)) return `batch_input_shape ${JSON.stringify(batch)} needs known positive dimensions`
  if (dims.length === 1) return dims as Array<number>
  if (dims.length === 3) return [dims[2], dims[0], dims[1]] as Array<number>
  return `input of rank ${dims.length} (${JSON.stringify(dims)}) is not supported: Crucible takes [features] or [H, W, C] images`
}

/** The symmetric padding that reproduces Keras' `same` on both image dimensions, if one does. */
const samePadding = (h: number, w: number, k: number, s: number): number | undefined => {
  const total = (d: number) => Math.max((Math.ceil(d / s) - 1) * s + k - d, 0)
  const [th, tw] = [total(h), total(w)]
  return th === tw && th % 2 === 0 ? th / 2 : undefined
}

/** Converts a `modelTopology`; `source` names the file in errors. */
export const fromTopology = (topology: unknown, source: string): Effect.Effect<Converted, TfjsTopologyError> =>
  Effect.gen(function* () {
    const fail = (layer: string, detail: string) => new TfjsTopologyError({ source, layer, detail })
    const listed = sequentialLayers(topology)
    if (typeof listed === "string") return yield* fail("modelTopology", listed)
    const layers: Array<Arch.Layer> = []
    const tensors: Array<TensorMapping> = []
    const synthesized: Array<string> = []
    let outputActivation: "softmax" | undefined
    let input: ReadonlyArray<number> | undefined
    /** Current per-sample shape, PyTorch layout. */
    let shape: ReadonlyArray<number> | undefined
    /** Set between a Flatten of an image and the Dense that consumes its features. */
    let flattened: readonly [number, number, number] | undefined

    for (const [i, raw] of listed.entries()) {
      const { class_name, config } = (isObject(raw) ? raw : {}) as { class_name?: unknown; config?: unknown }
      const name = isObject(config) && typeof config.name === "string" ? config.name : `#${i}`
      const at = `layers[${i}] ${JSON.stringify(name)} (${String(class_name)})`
      if (typeof class_name !== "string" || !isObject(config)) return yield* fail(at, "a layer needs class_name and config")
      const layer: KerasLayer = { className: class_name, config }
      const last = i === listed.length - 1
      const declared = inputShapeOf(config)
      if (typeof declared === "string") return yield* fail(at, declared)
      if (declared !== undefined && shape === undefined) input = shape = declared
      if (layer.className === "InputLayer") {
        if (declared === undefined) return yield* fail(at, "an InputLayer needs batch_input_shape")
        continue
      }
      if (shape === undefined) return yield* fail(at, "the first layer declares no input shape (batch_input_shape); add an InputLayer")
      const image = shape.length === 3
      const index = () => layers.length
      const param = (leaf: string, torchLeaf: string, from?: readonly [number, number, number]) =>
        tensors.push({ tfjs: `${name}/${leaf}`, torch: `layers.${index()}.${torchLeaf}`, ...(from === undefined ? {} : { flattenedFrom: from }) })
      const channelsLast = () =>
        config.data_format === undefined || config.data_format === null || config.data_format === "channels_last"
          ? undefined
          : fail(at, `data_format ${JSON.stringify(config.data_format)} is not supported (TF.js images are channels_last)`)
      /** The activation after a layer, as Crucible layers (none, relu), or an error. */
      const activation = (value: unknown): ReadonlyArray<Arch.Layer> | TfjsTopologyError => {
        const act = value ?? "linear"
        if (act === "linear") return []
        if (act === "relu") return [{ type: "relu" }]
        if (act === "softmax" && last) {
          outputActivation = "softmax"
          return []
        }
        return fail(at, `activation ${JSON.stringify(act)} is not supported (relu, linear, or softmax on the last layer, read as logits)`)
      }

      switch (layer.className) {
        case "Dense": {
          if (image) return yield* fail(at, `Dense on an image [H, W, C] applies per position, which Crucible's dense does not; add a Flatten before it`)
          const units = config.units
          if (!Number.isSafeInteger(units) || (units as number) < 1) return yield* fail(at, `units ${JSON.stringify(units)} is not a positive integer`)
          const after = activation(config.activation)
          if (after instanceof TfjsTopologyError) return yield* after
          const bias = config.use_bias !== false
          param("kernel", "weight", flattened)
          if (bias) param("bias", "bias")
          flattened = undefined
          layers.push({ type: "dense", out: units as number, bias }, ...after)
          shape = [units as number]
          break
        }
        case "Conv2D": {
          const bad = channelsLast()
          if (bad) return yield* bad
          if (!image) return yield* fail(at, `Conv2D needs an image input, got [${shape.join(", ")}]`)
          const [, h, w] = shape as [number, number, number]
          const filters = config.filters
          const k = square(config.kernel_size)
          const s = square(config.strides ?? 1)
          if (!Number.isSafeInteger(filters) || (filters as number) < 1) return yield* fail(at, `filters ${JSON.stringify(filters)} is not a positive integer`)
          if (k === undefined) return yield* fail(at, `kernel_size ${JSON.stringify(config.kernel_size)} is not square; Crucible's conv2d has square kernels`)
          if (s === undefined) return yield* fail(at, `strides ${JSON.stringify(config.strides)} differ per axis; Crucible's conv2d has one stride`)
          if (square(config.dilation_rate ?? 1) !== 1) return yield* fail(at, `dilation_rate ${JSON.stringify(config.dilation_rate)} is not supported`)
          if ((config.groups ?? 1) !== 1) return yield* fail(at, `groups ${JSON.stringify(config.groups)} is not supported`)
          const padding = config.padding ?? "valid"
          let pad = 0
          if (padding === "same") {
            const p = samePadding(h, w, k, s)
            if (p === undefined) return yield* fail(at, `padding "same" here pads unevenly (kernel ${k}, stride ${s}, input ${h}×${w}); Crucible's conv2d pads symmetrically`)
            pad = p
          } else if (padding !== "valid") return yield* fail(at, `padding ${JSON.stringify(padding)} is not supported (valid, same)`)
          const after = activation(config.activation)
          if (after instanceof TfjsTopologyError) return yield* after
          const bias = config.use_bias !== false
          param("kernel", "weight")
          if (bias) param("bias", "bias")
          layers.push({ type: "conv2d", out: filters as number, kernel: k, stride: s, padding: pad, bias }, ...after)
          shape = [filters as number, Math.floor((h + 2 * pad - k) / s) + 1, Math.floor((w + 2 * pad - k) / s) + 1]
          break
        }
        case "MaxPooling2D":
        case "AveragePooling2D": {
          const bad = channelsLast()
          if (bad) return yield* bad
          if (!image) return yield* fail(at, `pooling needs an image input, got [${shape.join(", ")}]`)
          const k = square(config.pool_size ?? 2)
          const s = config.strides === undefined || config.strides === null ? k : square(config.strides)
          if (k === undefined || s === undefined) return yield* fail(at, `pool_size ${JSON.stringify(config.pool_size)} / strides ${JSON.stringify(config.strides)} must be square`)
          if ((config.padding ?? "valid") !== "valid") return yield* fail(at, `padding ${JSON.stringify(config.padding)} is not supported for pooling (valid only)`)
          const [c, h, w] = shape as [number, number, number]
          if (h < k || w < k) return yield* fail(at, `pool_size ${k} is larger than the input ${h}×${w}`)
          layers.push({ type: layer.className === "MaxPooling2D" ? "maxpool" : "avgpool", kernel: k, stride: s })
          shape = [c, Math.floor((h - k) / s) + 1, Math.floor((w - k) / s) + 1]
          break
        }
        case "BatchNormalization": {
          const axis = Array.isArray(config.axis) && config.axis.length === 1 ? config.axis[0] : (config.axis ?? -1)
          if (axis !== -1 && axis !== shape.length) return yield* fail(at, `axis ${JSON.stringify(config.axis)} is not the channel (last) axis`)
          if (config.center === false || config.scale === false) return yield* fail(at, "center: false / scale: false are not supported (Crucible's batchnorm has both weight and bias)")
          const eps = typeof config.epsilon === "number" ? config.epsilon : 1e-3
          const momentum = 1 - (typeof config.momentum === "number" ? config.momentum : 0.99)
          if (!(momentum > 0 && momentum <= 1)) return yield* fail(at, `momentum ${JSON.stringify(config.momentum)} must lie in [0, 1)`)
          param("gamma", "weight", flattened)
          param("beta", "bias", flattened)
          param("moving_mean", "running_mean", flattened)
          param("moving_variance", "running_var", flattened)
          synthesized.push(`layers.${index()}.num_batches_tracked`)
          layers.push({ type: "batchnorm", eps, momentum })
          break
        }
        case "Flatten": {
          const bad = channelsLast()
          if (bad) return yield* bad
          if (image) {
            const [c, h, w] = shape as [number, number, number]
            flattened = [h, w, c]
          }
          layers.push({ type: "flatten" })
          shape = [shape.reduce((a, b) => a * b, 1)]
          break
        }
        case "Activation": {
          const after = activation(config.activation)
          if (after instanceof TfjsTopologyError) return yield* after
          layers.push(...after)
          break
        }
        case "ReLU": {
          const plain = (config.max_value ?? null) === null && (config.negative_slope ?? 0) === 0 && (config.threshold ?? 0) === 0
          if (!plain) return yield* fail(at, "only a plain ReLU (no max_value, negative_slope or threshold) is supported")
          layers.push({ type: "relu" })
          break
        }
        default:
          return yield* fail(at, `layer class ${JSON.stringify(layer.className)} is not supported (InputLayer, Dense, Conv2D, MaxPooling2D, AveragePooling2D, BatchNormalization, Flatten, Activation, ReLU)`)
      }
    }
    if (input === undefined) return yield* fail("modelTopology", "no layer declares the input shape")
    if (layers.length === 0) return yield* fail("modelTopology", "has no layers Crucible runs")
    const arch = yield* Arch.decode({ type: "sequential", input, layers }, `${source} modelTopology`).pipe(
      Effect.mapError((e) => fail("modelTopology", e.message))
    )
    return { arch, tensors, synthesized, ...(outputActivation === undefined ? {} : { outputActivation }) }
  })

/** Whether `model` carries a TF.js topology (core's `Tfjs.read` sets it from model.json). */
export const hasTopology = (model: Model.Model): boolean => {
  const stored = model.metadata[TOPOLOGY_KEY]
  // A model.json Crucible wrote without a topology says `"modelTopology": null`.
  return stored !== undefined && stored !== "null"
}

/** Converts the topology core's TF.js reader left in `model`'s metadata. */
export const fromModel = (model: Model.Model): Effect.Effect<Converted, TfjsTopologyError> => {
  const stored = model.metadata[TOPOLOGY_KEY]
  if (stored === undefined) return Effect.fail(new TfjsTopologyError({ source: model.source, layer: "modelTopology", detail: `no "${TOPOLOGY_KEY}" metadata (not read from a TF.js model.json)` }))
  let topology: unknown
  try {
    topology = JSON.parse(stored)
  } catch (e) {
    return Effect.fail(new TfjsTopologyError({ source: model.source, layer: "modelTopology", detail: `metadata is not JSON: ${(e as Error).message}` }))
  }
  return fromTopology(topology, model.source)
}

/** The model tensor a TF.js weight name refers to: exact, else the one ending in `/<name>` (scoped names). */
const findTensor = (model: Model.Model, name: string): TensorRef.TensorRef | undefined =>
  model.tensors.get(name) ?? (() => {
    const hits = [...model.tensors.values()].filter((t) => t.name.endsWith(`/${name}`))
    return hits.length === 1 ? hits[0] : undefined
  })()

/** Reorders a tensor's last dimension from NHWC-flatten `(h, w, c)` to NCHW-flatten `(c, h, w)`, lazily. */
const channelMajor = (t: TensorRef.TensorRef, [h, w, c]: readonly [number, number, number]): TensorRef.TensorRef => {
  const lead = t.shape.slice(0, -1)
  const view = { ...t, shape: [...lead, h, w, c] }
  const r = lead.length
  const perm = [...lead.keys(), r + 2, r, r + 1]
  return TfjsLayout.permute(view, perm, t.name, t.shape)
}

/**
 * `model`'s TF.js weights under their PyTorch names and layouts (lazy: bytes move when read),
 * plus the synthesized buffers. A weight the topology names but the model lacks, or a model
 * tensor the topology does not name, is a {@link ParamError} naming it.
 */
export const toTorchModel = (model: Model.Model, converted: Converted): Effect.Effect<Model.Model, ParamError> =>
  Effect.gen(function* () {
    const fail = (tensor: string, detail: string) => new ParamError({ tensor, detail, source: model.source })
    const torchOf = new Map<string, TensorMapping>()
    for (const mapping of converted.tensors) {
      const t = findTensor(model, mapping.tfjs)
      if (t === undefined) return yield* fail(mapping.tfjs, `missing; the topology's layer needs it (as ${mapping.torch})`)
      torchOf.set(t.name, mapping)
    }
    for (const name of model.tensors.keys()) {
      if (!torchOf.has(name)) return yield* fail(name, "is not a weight of any layer of the model's topology")
    }
    const renamed = TfjsLayout.tfjsToTorch(model, { rename: (_, original) => torchOf.get(original)!.torch })
    const tensors = [...renamed.tensors.values()].map((t) => {
      const from = converted.tensors.find((m) => m.torch === t.name)?.flattenedFrom
      const [h, w, c] = from ?? [0, 0, 0]
      return from !== undefined && t.shape[t.shape.length - 1] === h * w * c ? channelMajor(t, from) : t
    })
    const buffers = converted.synthesized.map((name) => TensorRef.fromBytes(name, "I64", [], new Uint8Array(8)))
    return Model.make(model.source, [...tensors, ...buffers], model.metadata, model.files)
  })
