/**
 * `report.html`: the run page as one file in the run directory, written at the end of every run.
 * Everything is inside it — styles, script, the DAG, timeline and charts as inline SVG, image
 * artifacts as data URIs, the run's view model as embedded JSON — and its Content-Security-Policy
 * forbids any network access, so it opens from disk (file://), offline, anywhere.
 *
 * @since 0.1.0
 */
import { AtomicFile, type IoError } from "@crucible/core"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { escape } from "./Html.ts"
import * as Page from "./Page.ts"
import * as RunData from "./RunData.ts"
import type { InputPorts, RunView } from "./RunView.ts"
import type { RunUnreadable } from "./UiError.ts"

/** Largest artifact inlined into the report; bigger ones are named, not embedded. */
export const MAX_INLINE_BYTES = 4 * 1024 * 1024

const IMAGE_TYPES: Readonly<Record<string, string>> = { ".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg" }

/** An artifact as report HTML: an image inlined as a data URI (read only inside `runDir`), else its name. */
export const inlineArtifact = (runDir: string) => (relative: string): string => {
  const name = escape(relative)
  const type = IMAGE_TYPES[path.extname(relative).toLowerCase()]
  const data = type === undefined ? undefined : readInside(runDir, relative)
  if (data === undefined) return `<p class="note">artifact <code>${name}</code> (in the run directory)</p>`
  // An <img> never runs an SVG's scripts, so inlining a stage's plot is safe.
  return `<figure><img src="data:${type};base64,${data.toString("base64")}" alt="${name}"><figcaption class="note">${name}</figcaption></figure>`
}

// The bytes of a regular file inside runDir (symlinks resolved), if small enough to inline.
const readInside = (runDir: string, relative: string): Buffer | undefined => {
  try {
    const root = fs.realpathSync(runDir)
    const file = fs.realpathSync(path.resolve(root, relative))
    const stat = fs.statSync(file)
    return file.startsWith(root + path.sep) && stat.isFile() && stat.size <= MAX_INLINE_BYTES ? fs.readFileSync(file) : undefined
  } catch {
    return undefined
  }
}

/** The report's HTML for a view of the run in `runDir`. */
export const render = (view: RunView, runDir: string): string => Page.runPage(view, { mode: "report", artifact: inlineArtifact(runDir) })

/** Options of {@link write}. */
export interface WriteOptions {
  /** Input ports of the kinds the run used (default: the built-in kinds), for the DAG's edges. */
  readonly inputPorts?: InputPorts
}

/** Writes `report.html` into `runDir` atomically, from what the run directory holds now. */
export const write = (runDir: string, options: WriteOptions = {}): Effect.Effect<string, RunUnreadable | IoError.IoError> =>
  Effect.gen(function* () {
    const view = yield* RunData.readRunDir(runDir, options.inputPorts === undefined ? {} : { inputPorts: options.inputPorts })
    const file = path.join(runDir, RunData.files.report)
    yield* AtomicFile.writeWhole(file, render(view, runDir))
    return file
  })
