/**
 * Per-epoch checkpoints of a training (`train`, `distill`) in its stage's cache folder:
 * the newest full training state `epoch-<n>.safetensors` (parameters + optimizer slots), the
 * per-epoch history `history.json`, and the parameters of the best validation epoch
 * `best.safetensors` (for early stopping). Writes are atomic, so any file present is whole.
 *
 * Model and history are published as one unit (`CheckpointFolder.ts`): readers cut the history
 * at the state's epoch, and `latest` treats a state whose history is shorter than its epoch as
 * absent, so a kill between the two writes redoes that epoch.
 *
 * @since 0.1.0
 */
import { Safetensors } from "@crucible/core"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { Network } from "../models/Network.ts"
import * as Params from "../models/Params.ts"
import * as Checkpoint from "./Checkpoint.ts"
import * as CheckpointFolder from "./CheckpointFolder.ts"
import type { TrainState } from "./Train.ts"

/** One epoch's record (no timings, so outputs are deterministic). @category models */
export type EpochRecord = Readonly<Record<string, number>>

const folder = CheckpointFolder.make("epoch", 4)
const bestFile = (dir: string) => path.join(dir, "best.safetensors")

/**
 * The newest checkpoint's state, with the history of its epochs. A state without its epochs'
 * history (left by a kill between the writes) would record fewer epochs than it trained: absent,
 * so that epoch is redone.
 */
export const latest = (network: Network, dir: string) =>
  Effect.scoped(
    folder.latest(
      dir,
      (file) => Effect.flatMap(Safetensors.read(file), (model) => Checkpoint.fromModel(network, model)),
      (state) => state.epoch,
      (history: Array<EpochRecord>, epoch) => (history.length < epoch ? undefined : history.slice(0, epoch))
    )
  )

/**
 * Writes the history, then epoch `state.epoch`'s state, then drops older epoch files (each holds
 * everything). History first: until the state is in place, the previous state's readers cut it.
 */
export const save = (network: Network, state: TrainState, dir: string, history: ReadonlyArray<EpochRecord>) =>
  Effect.asVoid(folder.publish(dir, state.epoch, history.slice(0, state.epoch), (file) => Safetensors.write(file, Checkpoint.toModel(network, state))))

/** Keeps `params` as the best epoch's. */
export const saveBest = (network: Network, params: Params.ParamSet, epoch: number, dir: string) =>
  Effect.gen(function* () {
    fs.mkdirSync(dir, { recursive: true })
    yield* Safetensors.write(bestFile(dir), Params.toModel(network, params, "best", { "crucible.distill.epoch": `${epoch}` }))
  })

/** The best epoch's parameters, if kept. */
export const readBest = (network: Network, dir: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      if (!fs.existsSync(bestFile(dir))) return undefined
      return yield* Params.fromModel(network, yield* Safetensors.read(bestFile(dir)))
    })
  )
