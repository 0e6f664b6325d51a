/**
 * Architecture specs as a user writes them under `arch:` in YAML or JSON.
 *
 * ```yaml
 * arch: { type: mlp, layers: [784, 128, 128, 10], activation: relu }
 * ```
 * ```yaml
 * arch:
 *   type: sequential          # CNNs and residual networks
 *   input: [1, 28, 28]        # per-sample shape in PyTorch layout: [C, H, W] or [features]
 *   layers:
 *     - { type: conv2d, out: 16, kernel: 3, padding: 1 }
 *     - { type: batchnorm }
 *     - { type: relu }
 *     - { type: maxpool, kernel: 2 }
 *     - type: residual        # y = body(x) + shortcut(x); shortcut defaults to identity
 *       body:
 *         - { type: conv2d, out: 16, kernel: 3, padding: 1 }
 *         - { type: batchnorm }
 *         - { type: relu }
 *         - { type: conv2d, out: 16, kernel: 3, padding: 1 }
 *     - { type: relu }
 *     - { type: flatten }
 *     - { type: dense, out: 10 }
 * ```
 *
 * Layers mean what the PyTorch module of the same name means (`nn.Conv2d`, `nn.BatchNorm1d/2d`,
 * `nn.LayerNorm` over all of a sample's dimensions, `nn.MaxPool2d`/`nn.AvgPool2d` without padding,
 * `nn.Flatten`, `nn.Linear`), and parameters are named as PyTorch names them: see
 * `Network.ts` for the naming convention.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import { ArchError } from "./ModelError.ts"

const Positive = Schema.Int.check(Schema.isGreaterThan(0))
const NonNegative = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const PositiveFinite = Schema.Finite.check(Schema.isGreaterThan(0))

/** `nn.Conv2d(in, out, kernel, stride, padding, bias)`; `in` is inferred. @category schemas */
export const Conv2d = Schema.Struct({
  type: Schema.Literal("conv2d"),
  out: Positive,
  kernel: Positive,
  stride: Schema.optional(Positive),
  padding: Schema.optional(NonNegative),
  bias: Schema.optional(Schema.Boolean)
})

/** `nn.Linear(in, out, bias)` on a flat input; `in` is inferred. @category schemas */
export const Dense = Schema.Struct({ type: Schema.Literal("dense"), out: Positive, bias: Schema.optional(Schema.Boolean) })

/** `nn.ReLU()`. @category schemas */
export const Relu = Schema.Struct({ type: Schema.Literal("relu") })

/** `nn.MaxPool2d(kernel, stride)` (stride defaults to kernel, no padding, floor mode). @category schemas */
export const MaxPool = Schema.Struct({ type: Schema.Literal("maxpool"), kernel: Positive, stride: Schema.optional(Positive) })

/** `nn.AvgPool2d(kernel, stride)` (stride defaults to kernel, no padding, floor mode). @category schemas */
export const AvgPool = Schema.Struct({ type: Schema.Literal("avgpool"), kernel: Positive, stride: Schema.optional(Positive) })

/** `nn.Flatten()`: `[C, H, W]` → `[C·H·W]` in PyTorch's (channel-major) order. @category schemas */
export const Flatten = Schema.Struct({ type: Schema.Literal("flatten") })

/** `nn.BatchNorm1d/2d(channels, eps, momentum)` by input rank; `channels` is inferred. @category schemas */
export const BatchNorm = Schema.Struct({
  type: Schema.Literal("batchnorm"),
  eps: Schema.optional(PositiveFinite),
  momentum: Schema.optional(Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1, exclusiveMinimum: true })))
})

/** `nn.LayerNorm(sample_shape, eps)`: normalises each sample over all its dimensions. @category schemas */
export const LayerNorm = Schema.Struct({ type: Schema.Literal("layernorm"), eps: Schema.optional(PositiveFinite) })

/** A layer of a sequential architecture. @category models */
export type Layer =
  | typeof Conv2d.Type
  | typeof Dense.Type
  | typeof Relu.Type
  | typeof MaxPool.Type
  | typeof AvgPool.Type
  | typeof Flatten.Type
  | typeof BatchNorm.Type
  | typeof LayerNorm.Type
  | Residual

/** `y = body(x) + shortcut(x)`, the shortcut being the identity when omitted. @category models */
export interface Residual {
  readonly type: "residual"
  readonly body: ReadonlyArray<Layer>
  readonly shortcut?: ReadonlyArray<Layer> | undefined
}

const Layers: Schema.Codec<ReadonlyArray<Layer>> = Schema.Array(Schema.suspend((): Schema.Codec<Layer> => LayerSchema)).check(
  Schema.isMinLength(1)
)

/** A residual block. @category schemas */
export const ResidualSchema: Schema.Codec<Residual> = Schema.Struct({
  type: Schema.Literal("residual"),
  body: Layers,
  shortcut: Schema.optional(Layers)
})

/** Any layer. @category schemas */
export const LayerSchema: Schema.Codec<Layer> = Schema.Union([
  Conv2d,
  Dense,
  Relu,
  MaxPool,
  AvgPool,
  Flatten,
  BatchNorm,
  LayerNorm,
  ResidualSchema
])

/** A multilayer perceptron: `layers` are the widths from input to output. @category schemas */
export const Mlp = Schema.Struct({
  type: Schema.Literal("mlp"),
  layers: Schema.Array(Positive).check(Schema.isMinLength(2)),
  /** Between hidden layers; `relu` is the only one so far (and the default). */
  activation: Schema.optional(Schema.Literal("relu")),
  /** A norm after each hidden linear layer, before the activation. */
  norm: Schema.optional(Schema.Literals(["batchnorm", "layernorm"])),
  bias: Schema.optional(Schema.Boolean)
})

/** A sequential network (CNNs, residual networks) over inputs of shape `input`. @category schemas */
export const Sequential = Schema.Struct({
  type: Schema.Literal("sequential"),
  input: Schema.Array(Positive).check(Schema.isMinLength(1), Schema.isMaxLength(3)),
  layers: Layers
})

/** An architecture spec. @category schemas */
export const Arch = Schema.Union([Mlp, Sequential])

/** @category models */
export type Arch = typeof Arch.Type

const ARCH_TYPES = ["mlp", "sequential"]
const LAYER_TYPES = ["conv2d", "dense", "relu", "maxpool", "avgpool", "flatten", "batchnorm", "layernorm", "residual"]

const typeOf = (value: unknown): unknown => (typeof value === "object" && value !== null ? (value as { readonly type?: unknown }).type : undefined)

// A union's own message lists every member; naming the unknown `type` is what a user needs.
const unknownType = (input: unknown, at: string): ArchError | undefined => {
  const type = typeOf(input)
  if (!ARCH_TYPES.includes(type as string)) {
    return new ArchError({ path: `${at}.type`, detail: `unknown architecture type ${JSON.stringify(type)}; expected one of ${ARCH_TYPES.join(", ")}` })
  }
  const walk = (layers: unknown, path: string): ArchError | undefined => {
    if (!Array.isArray(layers)) return undefined
    for (const [i, layer] of layers.entries()) {
      const t = typeOf(layer)
      if (!LAYER_TYPES.includes(t as string)) {
        return new ArchError({ path: `${path}[${i}].type`, detail: `unknown layer type ${JSON.stringify(t)}; expected one of ${LAYER_TYPES.join(", ")}` })
      }
      const inner = t === "residual" ? (walk((layer as Residual).body, `${path}[${i}].body`) ?? walk((layer as Residual).shortcut, `${path}[${i}].shortcut`)) : undefined
      if (inner) return inner
    }
    return undefined
  }
  return type === "sequential" ? walk((input as { readonly layers?: unknown }).layers, `${at}.layers`) : undefined
}

/** Decodes an `arch:` value (parsed YAML or JSON), reporting the first problem with its path. */
export const decode = (input: unknown, at = "arch"): Effect.Effect<Arch, ArchError> => {
  const unknown = unknownType(input, at)
  if (unknown !== undefined) return Effect.fail(unknown)
  return Schema.decodeUnknownEffect(Arch)(input).pipe(Effect.mapError((error) => new ArchError({ path: at, detail: error.message })))
}
