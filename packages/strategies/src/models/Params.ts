/**
 * Parameter sets: every tensor of a network by its PyTorch name, in PyTorch layout, as float32
 * on the host — what `init` makes, `train` returns and a checkpoint holds — and their exchange
 * with core's `Model` (so safetensors files written by PyTorch load unchanged).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { ModelIoError } from "@crucible/core/io/IoError"
import * as Model from "@crucible/core/model/Model"
import { fromNumbers } from "@crucible/core/tensor/DType"
import * as TensorRef from "@crucible/core/tensor/TensorRef"
import type { HostTensor } from "./Layout.ts"
import { ParamError } from "./ModelError.ts"
import type { Network, ParamSpec } from "./Network.ts"

/** Tensors by name, PyTorch layout, float32. @category models */
export type ParamSet = ReadonlyMap<string, HostTensor>

const sameShape = (a: ReadonlyArray<number>, b: ReadonlyArray<number>): boolean => a.length === b.length && a.every((d, i) => d === b[i])
const fmt = (shape: ReadonlyArray<number>): string => `[${shape.join(", ")}]`

/**
 * Checks that `params` holds exactly the network's tensors with their shapes (like PyTorch's
 * `load_state_dict(strict=True)`), and returns them in `state_dict` order.
 */
export const validate = (network: Network, params: ParamSet, source?: string): Effect.Effect<ParamSet, ParamError> =>
  Effect.gen(function* () {
    const fail = (tensor: string, detail: string) => new ParamError({ tensor, detail, ...(source === undefined ? {} : { source }) })
    const ordered = new Map<string, HostTensor>()
    for (const spec of network.params) {
      const tensor = params.get(spec.name)
      if (tensor === undefined) return yield* fail(spec.name, `missing; the architecture expects ${fmt(spec.shape)}`)
      if (!sameShape(tensor.shape, spec.shape)) return yield* fail(spec.name, `has shape ${fmt(tensor.shape)}, the architecture expects ${fmt(spec.shape)}`)
      const size = spec.shape.reduce((a, b) => a * b, 1)
      if (tensor.data.length !== size) return yield* fail(spec.name, `holds ${tensor.data.length} values for shape ${fmt(spec.shape)} (${size})`)
      ordered.set(spec.name, tensor)
    }
    for (const name of params.keys()) {
      if (!ordered.has(name)) return yield* fail(name, `is not a tensor of this architecture (expected names like "${network.params[0]?.name ?? "?"}")`)
    }
    return ordered
  })

/** Reads a network's parameters from a model (any float dtype; `num_batches_tracked` may be int). */
export const fromModel = (network: Network, model: Model.Model): Effect.Effect<ParamSet, ParamError | ModelIoError | TensorRef.TensorError> =>
  Effect.gen(function* () {
    const params = new Map<string, HostTensor>()
    for (const spec of network.params) {
      const ref = model.tensors.get(spec.name)
      if (ref === undefined) {
        return yield* new ParamError({ tensor: spec.name, source: model.source, detail: `missing; the architecture expects ${fmt(spec.shape)}` })
      }
      if (!sameShape(ref.shape, spec.shape)) {
        return yield* new ParamError({ tensor: spec.name, source: model.source, detail: `has shape ${fmt(ref.shape)}, the architecture expects ${fmt(spec.shape)}` })
      }
      params.set(spec.name, { shape: spec.shape, data: yield* TensorRef.readFloat32(ref) })
    }
    for (const name of model.tensors.keys()) {
      if (!params.has(name)) return yield* new ParamError({ tensor: name, source: model.source, detail: "is not a tensor of this architecture" })
    }
    return params
  })

const dtypeOf = (spec: ParamSpec) => (spec.role === "num_batches_tracked" ? ("I64" as const) : ("F32" as const))

/** A model over the parameters, as PyTorch stores them (`num_batches_tracked` as int64). */
export const toModel = (network: Network, params: ParamSet, source = "crucible", metadata: Readonly<Record<string, string>> = {}): Model.Model =>
  Model.make(
    source,
    network.params.flatMap((spec) => {
      const tensor = params.get(spec.name)
      if (tensor === undefined) return []
      const dtype = dtypeOf(spec)
      const bytes = dtype === "F32" ? new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength).slice() : fromNumbers(tensor.data, dtype)
      return [TensorRef.fromBytes(spec.name, dtype, spec.shape, bytes)]
    }),
    metadata
  )

/** `(1 − λ)·a + λ·b`, tensor by tensor, in float64 arithmetic rounded once to float32. */
export const lerp = (a: ParamSet, b: ParamSet, lambda: number): ParamSet => {
  const out = new Map<string, HostTensor>()
  for (const [name, ta] of a) {
    const tb = b.get(name)
    if (tb === undefined || tb.data.length !== ta.data.length) throw new RangeError(`lerp: "${name}" differs between the two parameter sets`)
    const data = new Float32Array(ta.data.length)
    for (let i = 0; i < data.length; i++) data[i] = (1 - lambda) * ta.data[i]! + lambda * tb.data[i]!
    out.set(name, { shape: ta.shape, data })
  }
  return out
}

/** A deep copy (parameter sets are shared read-only; copy before mutating). */
export const clone = (params: ParamSet): ParamSet => new Map(Array.from(params, ([name, t]) => [name, { shape: t.shape, data: t.data.slice() }] as const))

/** Number of trainable values (weights and biases). */
export const countTrainable = (network: Network): number =>
  network.params.filter((p) => p.trainable).reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0)
