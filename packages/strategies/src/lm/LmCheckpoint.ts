/**
 * Step checkpoints of a language-model training (`lm/train`, `lm/distill`) in its stage's cache
 * folder: the newest full state `step-<n>.safetensors` (the weights under their Hugging Face names,
 * the optimizer slots as `optimizer.<tensor>.<slot>` in the device's layout, the counters in the
 * metadata) and the logged history `history.json`.
 *
 * As in `train/EpochCheckpoints.ts`, the history is written before the state is renamed into
 * place (every write is atomic), readers cut the history at the state's step, and a state whose
 * history does not reach its step is treated as absent: a kill between the two writes redoes that
 * interval, and the resumed training ends with the bytes of an uninterrupted one.
 *
 * @since 0.1.0
 */
import { AtomicFile, Safetensors } from "@crucible/core"
import * as Model from "@crucible/core/model/Model"
import * as TensorRef from "@crucible/core/tensor/TensorRef"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { HostTensor } from "../models/Layout.ts"
import type * as Optimizer from "../train/Optimizer.ts"
import type { LmConfig } from "./LmConfig.ts"
import * as LmWeights from "./LmWeights.ts"
import { LmTrainError, type LmTrainState } from "./LmTrain.ts"

/** One logged interval (no timings, so outputs are deterministic). @category models */
export type StepRecord = Readonly<Record<string, number>> & { readonly step: number }

const SLOT_PREFIX = "optimizer."
const OPTIMIZER_TYPES: ReadonlyArray<Optimizer.OptimizerState["type"]> = ["sgd", "adam", "adamw"]
const STEP_FILE = /^step-\d+\.safetensors$/
const stepFile = (dir: string, step: number) => path.join(dir, `step-${String(step).padStart(7, "0")}.safetensors`)
const historyFile = (dir: string) => path.join(dir, "history.json")

/** The records logged so far (empty when none). */
export const readHistory = (dir: string): Array<StepRecord> => {
  try { return JSON.parse(fs.readFileSync(historyFile(dir), "utf8")) as Array<StepRecord> } catch { return [] }
}

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

/** The newest checkpoint's state and file, if any (one whose history reaches its step). */
export const latest = (config: LmConfig, dir: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => STEP_FILE.test(f)).sort() : []
      const last = files.at(-1)
      if (last === undefined) return undefined
      const file = path.join(dir, last)
      const state = yield* fromModel(config, yield* Safetensors.read(file))
      const history = readHistory(dir)
      if ((history.at(-1)?.step ?? 0) < state.step) return undefined
      return { state, file, history: history.filter((r) => r.step <= state.step) }
    })
  )

/**
 * Writes the history (cut at the state's step), then the state, then drops older step files (each
 * holds everything). History first: until the state is in place, readers of the previous one cut it.
 */
export const save = (config: LmConfig, state: LmTrainState, dir: string, history: ReadonlyArray<StepRecord>) =>
  Effect.gen(function* () {
    fs.mkdirSync(dir, { recursive: true })
    const file = stepFile(dir, state.step)
    yield* AtomicFile.writeWhole(historyFile(dir), JSON.stringify(history.filter((r) => r.step <= state.step)))
    yield* Safetensors.write(file, toModel(config, state))
    for (const f of fs.readdirSync(dir)) if (STEP_FILE.test(f) && path.join(dir, f) !== file) fs.rmSync(path.join(dir, f), { force: true })
    return file
  })
