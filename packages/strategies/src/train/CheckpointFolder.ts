/**
 * The folder protocol every resumable training shares (`train/EpochCheckpoints.ts` per epoch,
 * `lm/LmCheckpoint.ts` per step): numbered full states `<prefix>-<n>.safetensors` beside one
 * `history.json` of logged records.
 *
 * A state and its history are published as one unit: {@link publish} writes the history (cut at
 * the state's counter) before it renames the state into place (every write is atomic), then drops
 * the older states (each holds everything). Readers cut the history at the newest state's counter
 * and treat a state whose history does not reach it as absent ({@link newestFile} + the caller's
 * check), so a kill between the two writes redoes that interval and the resumed training ends with
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
  /** The path of state `n` in `dir`. */
  readonly stateFile: (dir: string, n: number) => string
  /** The newest state file in `dir` (by its zero-padded counter), if any. */
  readonly newestFile: (dir: string) => string | undefined
  /** The records logged so far (empty when none or unreadable). */
  readonly readHistory: <R>(dir: string) => Array<R>
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
  return {
    stateFile,
    newestFile: (dir) => {
      const last = stateFiles(dir).at(-1)
      return last === undefined ? undefined : path.join(dir, last)
    },
    readHistory: <R>(dir: string): Array<R> => {
      try { return JSON.parse(fs.readFileSync(historyFile(dir), "utf8")) as Array<R> } catch { return [] }
    },
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
