/**
 * Training checkpoints as models (so any model writer, e.g. safetensors, stores them): the
 * parameters under their own names, the optimizer slots as `optimizer.<parameter>.<slot>`
 * (PyTorch layout, float32), and the counters in the metadata (`crucible.train.epoch`,
 * `crucible.train.step`, `crucible.optimizer.type`, `crucible.optimizer.step`). The parameter
 * tensors alone are a valid state_dict for PyTorch (`strict=False` skips the slots).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { ModelIoError } from "@crucible/core/io/IoError"
import * as Model from "@crucible/core/model/Model"
import * as TensorRef from "@crucible/core/tensor/TensorRef"
import type { HostTensor } from "../models/Layout.ts"
import { ParamError } from "../models/ModelError.ts"
import type { Network } from "../models/Network.ts"
import * as Params from "../models/Params.ts"
import type { OptimizerState } from "./Optimizer.ts"
import type { TrainState } from "./Train.ts"

const SLOT_PREFIX = "optimizer."
const OPTIMIZER_TYPES: ReadonlyArray<OptimizerState["type"]> = ["sgd", "adam", "adamw"]

/** A model holding a training state. */
export const toModel = (network: Network, state: TrainState, source = "checkpoint"): Model.Model => {
  const params = Params.toModel(network, state.params, source)
  const slots = Array.from(state.optimizer.slots, ([name, t]) =>
    TensorRef.fromBytes(`${SLOT_PREFIX}${name}`, "F32", t.shape, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength).slice())
  )
  return Model.make(source, [...params.tensors.values(), ...slots], {
    "crucible.train.epoch": `${state.epoch}`,
    "crucible.train.step": `${state.step}`,
    "crucible.optimizer.type": state.optimizer.type,
    "crucible.optimizer.step": `${state.optimizer.step}`
  })
}

/** Reads a training state written by {@link toModel}. */
export const fromModel = (network: Network, model: Model.Model): Effect.Effect<TrainState, ParamError | ModelIoError | TensorRef.TensorError> =>
  Effect.gen(function* () {
    const fail = (tensor: string, detail: string) => new ParamError({ tensor, detail, source: model.source })
    const counter = (key: string) => {
      const value = Number(model.metadata[key])
      return Number.isInteger(value) && value >= 0 ? value : undefined
    }
    const epoch = counter("crucible.train.epoch")
    const step = counter("crucible.train.step")
    const optimizerStep = counter("crucible.optimizer.step")
    const type = model.metadata["crucible.optimizer.type"] as OptimizerState["type"] | undefined
    if (epoch === undefined || step === undefined || optimizerStep === undefined || type === undefined || !OPTIMIZER_TYPES.includes(type)) {
      return yield* fail("__metadata__", "not a Crucible training checkpoint (crucible.train.* / crucible.optimizer.* metadata missing or invalid)")
    }
    const paramRefs = [...model.tensors.values()].filter((t) => !t.name.startsWith(SLOT_PREFIX))
    const params = yield* Params.fromModel(network, Model.make(model.source, paramRefs, model.metadata, model.files))
    const slots = new Map<string, HostTensor>()
    for (const ref of model.tensors.values()) {
      if (!ref.name.startsWith(SLOT_PREFIX)) continue
      const name = ref.name.slice(SLOT_PREFIX.length)
      const param = network.params.find((p) => name.startsWith(`${p.name}.`))
      if (param === undefined) return yield* fail(ref.name, "is an optimizer slot of no parameter of this architecture")
      if (ref.shape.join(",") !== param.shape.join(",")) return yield* fail(ref.name, `has shape [${ref.shape.join(", ")}], its parameter [${param.shape.join(", ")}]`)
      slots.set(name, { shape: ref.shape, data: yield* TensorRef.readFloat32(ref) })
    }
    return { epoch, step, params, optimizer: { type, step: optimizerStep, slots } }
  })
