/**
 * The shared store's layout: one folder every machine mounts at the same path (NFS in production,
 * a local folder on loopback). Results and checkpoints by stage key live in `cache/` (the results
 * store of `crucible run --cache-dir`); each run's unit folders in `runs/<run id>/`.
 *
 * @since 0.2.0
 */
import * as path from "node:path"

/** The results store (by stage key) inside the shared store. */
export const cacheDir = (store: string): string => path.join(path.resolve(store), "cache")

/** Where the units of run `runId` keep their run folders. */
export const runFolder = (store: string, runId: string): string => path.join(path.resolve(store), "runs", runId)
