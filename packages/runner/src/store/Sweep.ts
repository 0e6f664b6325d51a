/**
 * The sweep at a run's start: temporaries that killed runs left beside outputs (`.<name>.<owner>.…
 * .partial`, whose owner process is dead) are removed from every folder a stage of the pipeline
 * writes into and from the runs folder's run directories (a killed run's manifest or report
 * temporaries), and so are folders assembled for an output folder but never renamed into place
 * (`Sweep.folderOrphans`). Live owners' temporaries (a concurrent run's) are kept.
 *
 * @since 0.2.0
 */
import { AtomicFile, type Validate } from "@crucible/core"
import * as AtomicFolder from "@crucible/strategies/hf/AtomicFolder"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Identity from "./Identity.ts"

/** The folders to sweep for `pipeline`: its files stages' output folders, and the run directories in `runsDir`. */
export const outputFolders = (pipeline: Validate.ResolvedPipeline, baseDir: string, runsDir: string): ReadonlyArray<string> => {
  const folders = new Set<string>()
  for (const s of pipeline.stages) {
    const target = Identity.writesOf(s, baseDir)
    if (target !== undefined) folders.add(path.dirname(target))
  }
  let runs: Array<fs.Dirent> = []
  try {
    runs = fs.readdirSync(runsDir, { withFileTypes: true })
  } catch { /* no runs yet */ }
  for (const r of runs) if (r.isDirectory() && !r.name.startsWith(".")) folders.add(path.join(runsDir, r.name))
  return [...folders]
}

/** Removes dead processes' temporaries from `folders` (never fails). */
export const orphans = (folders: ReadonlyArray<string>): Effect.Effect<void> =>
  Effect.forEach(folders, (f) => AtomicFile.sweepOrphans(f), { discard: true })

/**
 * Removes what dead writers of the pipeline's output folders (Hugging Face folders, adapters)
 * left beside them — an assembled folder never renamed into place — and puts back an output
 * folder they had moved aside (never fails). A save that is reused from the store would not
 * sweep them itself.
 */
export const folderOrphans = (pipeline: Validate.ResolvedPipeline, baseDir: string): Effect.Effect<void> =>
  Effect.forEach(pipeline.stages.flatMap((s) => Identity.writesOf(s, baseDir) ?? []), (target) => AtomicFolder.sweep(target), { discard: true })
