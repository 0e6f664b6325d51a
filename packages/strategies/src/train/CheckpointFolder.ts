/**
 * The folder protocol every resumable training shares (`train/EpochCheckpoints.ts` per epoch,
 * `lm/LmCheckpoint.ts` per step): numbered full states `<prefix>-<n>.safetensors` beside one
 * `history.json` of logged records.
 *
 * A state and its history are published as one unit: {@link publish} writes the history (cut at
 * the state's counter) before it renames the state into place (every write is atomic), then drops
 * the older states (each holds everything). Readers cut the history at the newest state's counter
 * and treat a state whose history does not reach it as absent (`latest`), so a kill between the two writes redoes that interval and the resumed training ends with
 * the bytes of one that was never interrupted.
 *
 * @since 0.2.0
 */
import { AtomicFile, type IoError } from "@crucible/core"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"

/** A kind of numbered state file (`epoch-0003.safetensors`, `step-0000300.safetensors`). @category models */
export interface CheckpointFolder {
  /**
   * The newest state (by its counter) read by `read`, with the history `cut` at its counter `n`;
   * undefined when there is none, or when `cut` says the history does not reach `n` (a kill
   * between the two writes: that interval is redone).
   */
  readonly latest: <S, H, E, R>(
    dir: string,
    read: (file: string) => Effect.Effect<S, E, R>,
    counterOf: (state: S) => number,
    cut: (history: Array<H>, n: number) => Array<H> | undefined
  ) => Effect.Effect<{ readonly state: S; readonly file: string; readonly history: Array<H> } | undefined, E, R>
  /**
   * Writes `history` (already cut at the state's counter), then state `n` through `writeState`,
   * then removes every other state file. Returns the state's path.
   */
  readonly publish: <E, R>(
    dir: string,
    n: number,
    history: ReadonlyArray<unknown>,
    writeState: (file: string) => Effect.Effect<unknown, E, R>
  ) => Effect.Effect<string, E | IoError.IoError, R>
}

/** The folder protocol for state files named `<prefix>-<n zero-padded to digits>.safetensors`. @category constructors */
export const make = (prefix: string, digits: number): CheckpointFolder => {
  const pattern = new RegExp(`^${prefix}-\\d+\\.safetensors$`)
  const stateFile = (dir: string, n: number) => path.join(dir, `${prefix}-${String(n).padStart(digits, "0")}.safetensors`)
  const historyFile = (dir: string) => path.join(dir, "history.json")
  const stateFiles = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => pattern.test(f)).sort() : [])
  const readHistory = <H>(dir: string): Array<H> => {
    try { return JSON.parse(fs.readFileSync(historyFile(dir), "utf8")) as Array<H> } catch { return [] }
  }
  return {
    latest: (dir, read, counterOf, cut) =>
      Effect.gen(function* () {
        const last = stateFiles(dir).at(-1)
        if (last === undefined) return undefined
        const file = path.join(dir, last)
        const state = yield* read(file)
        const history = cut(readHistory(dir), counterOf(state))
        return history === undefined ? undefined : { state, file, history }
      }),
    publish: (dir, n, history, writeState) =>
      Effect.gen(function* () {
        fs.mkdirSync(dir, { recursive: true })
        const file = stateFile(dir, n)
        yield* AtomicFile.writeWhole(historyFile(dir), JSON.stringify(history))
        yield* writeState(file)
        for (const f of stateFiles(dir)) if (path.join(dir, f) !== file) fs.rmSync(path.join(dir, f), { force: true })
        return file
      })
  }
}
