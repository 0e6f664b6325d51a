/**
 * Step checkpoints of a language-model training (`lm/train`, `lm/distill`) in its stage's cache
 * folder: the newest full state `step-<n>.safetensors` (the weights under their Hugging Face names,
 * the optimizer slots as `optimizer.<tensor>.<slot>` in the device's layout, the counters in the
 * metadata) and the logged history `history.json`.
 *
 * The folder protocol is `train/CheckpointFolder.ts`'s (history written before the state, readers
 * cut it at the state's step, a state whose history does not reach its step is absent), so a kill
 * between the two writes redoes that interval.
 *
 * @since 0.1.0
 */
import { Safetensors } from "@crucible/core"
import * as Model from "@crucible/core/model/Model"
import * as TensorRef from "@crucible/core/tensor/TensorRef"
import { Effect } from "effect"
import type { HostTensor } from "../models/Layout.ts"
import * as CheckpointFolder from "../train/CheckpointFolder.ts"
import type * as Optimizer from "../train/Optimizer.ts"
import type { LmConfig } from "./LmConfig.ts"
import * as LmWeights from "./LmWeights.ts"
import { LmTrainError, type LmTrainState } from "./LmTrain.ts"

/** One logged interval (no timings, so outputs are deterministic). @category models */
export type StepRecord = Readonly<Record<string, number>> & { readonly step: number }

const SLOT_PREFIX = "optimizer."
const OPTIMIZER_TYPES: ReadonlyArray<Optimizer.OptimizerState["type"]> = ["sgd", "adam", "adamw"]
const folder = CheckpointFolder.make("step", 7)

const bytesOf = (data: Float32Array) => new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice()

/** A model holding a training state (weights, optimizer slots, counters). */
export const toModel = (config: LmConfig, state: LmTrainState, source = "lm-checkpoint"): Model.Model => {
  const weights = LmWeights.toModel(config, state.weights, source)
  const slots = Array.from(state.optimizer.slots, ([name, t]) => TensorRef.fromBytes(`${SLOT_PREFIX}${name}`, "F32", t.shape, bytesOf(t.data)))
  return Model.make(source, [...weights.tensors.values(), ...slots], {
    ...weights.metadata,
    "crucible.train.step": `${state.step}`,
    "crucible.optimizer.type": state.optimizer.type,
    "crucible.optimizer.step": `${state.optimizer.step}`
  })
}

/** Reads a training state written by {@link toModel}. */
export const fromModel = (config: LmConfig, model: Model.Model) =>
  Effect.gen(function* () {
    const counter = (key: string) => {
      const value = Number(model.metadata[key])
      return Number.isInteger(value) && value >= 0 ? value : undefined
    }
    const step = counter("crucible.train.step")
    const optimizerStep = counter("crucible.optimizer.step")
    const type = model.metadata["crucible.optimizer.type"] as Optimizer.OptimizerState["type"] | undefined
    if (step === undefined || optimizerStep === undefined || type === undefined || !OPTIMIZER_TYPES.includes(type)) {
      return yield* new LmTrainError({ reason: "ResumeMismatch", detail: `${model.source} is not a Crucible LM checkpoint (crucible.train.step / crucible.optimizer.* metadata missing or invalid)` })
    }
    const weightRefs = [...model.tensors.values()].filter((t) => !t.name.startsWith(SLOT_PREFIX))
    const weights = yield* LmWeights.fromModel(config, Model.make(model.source, weightRefs, model.metadata, model.files))
    const slots = new Map<string, HostTensor>()
    for (const ref of model.tensors.values()) {
      if (!ref.name.startsWith(SLOT_PREFIX)) continue
      slots.set(ref.name.slice(SLOT_PREFIX.length), { shape: ref.shape, data: yield* TensorRef.readFloat32(ref) })
    }
    const state: LmTrainState = { step, weights, optimizer: { type, step: optimizerStep, slots } }
    return state
  })

/** The newest checkpoint's state, file and history, if any (one whose history reaches its step). */
export const latest = (config: LmConfig, dir: string) =>
  Effect.scoped(
    folder.latest(
      dir,
      (file) => Effect.flatMap(Safetensors.read(file), (model) => fromModel(config, model)),
      (state) => state.step,
      (history: Array<StepRecord>, step) => ((history.at(-1)?.step ?? 0) < step ? undefined : history.filter((r) => r.step <= step))
    )
  )

/** Publishes the state with its history cut at its step (`CheckpointFolder.publish`: history first). */
export const save = (config: LmConfig, state: LmTrainState, dir: string, history: ReadonlyArray<StepRecord>) =>
  folder.publish(dir, state.step, history.filter((r) => r.step <= state.step), (file) => Safetensors.write(file, toModel(config, state)))
