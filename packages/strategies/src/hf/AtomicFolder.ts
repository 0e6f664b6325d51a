/**
 * A folder that appears whole or not at all: its files are written into a temporary sibling
 * (`.<name>.<owner token>.<12 hex>.partial`, `Owner.temporaryName`), which is renamed into place
 * when every file is there. A folder already at the target is moved aside first
 * (`.<name>.replaced.<token>.<hex>.partial`) and removed after the rename, so a reader sees the
 * old folder, briefly none, then the new one — never a part of either.
 *
 * Only a folder that is empty or holds a model (a `config.json`, an `adapter_config.json`, or
 * safetensors weights: {@link holdsModel}) is replaced: a non-empty folder holding none of these is
 * a user's own folder, and {@link refuseForeign} refuses it rather than delete its files (mergekit
 * writes into such a folder and leaves its files beside the model's; neither is what a user wants).
 *
 * A failure or an interruption removes the temporary folder. A `kill -9` cannot: {@link sweep}
 * removes a dead owner's temporaries before the next write to the same target (and puts a moved
 * aside folder back when the kill came between the two renames).
 *
 * @since 0.1.0
 */
import { AtomicFile, IoError, Owner } from "@crucible/core"
import { Effect, Exit, Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"

const PARTIAL = ".partial"
const REPLACED = "replaced"

/** A folder being assembled. @category models */
export interface Staging {
  /** Where the folder appears. */
  readonly target: string
  /** Where its files are written meanwhile. */
  readonly temporary: string
  /** Renames the assembled folder into place (uninterruptible). */
  readonly publish: Effect.Effect<void, IoError.IoError>
}

// What a model or adapter folder holds at its top: a folder with one of these is a model's output.
const MODEL_MARKERS = ["config.json", "adapter_config.json"]
const isWeights = (name: string) => name.endsWith(".safetensors") || name.endsWith(".safetensors.index.json")

/** Whether the folder entries `names` are those of a model folder (see the module doc). @category getters */
export const holdsModel = (names: ReadonlyArray<string>): boolean => names.some((n) => MODEL_MARKERS.includes(n) || isWeights(n))

/**
 * Fails when `target` is a non-empty folder that holds no model ({@link holdsModel}): replacing it
 * would delete files this writer did not write. A missing or empty folder, or a model folder, passes.
 *
 * @category constructors
 */
export const refuseForeign = (target: string): Effect.Effect<void, IoError.IoError> =>
  Effect.suspend(() => {
    let names: Array<string>
    try {
      names = fs.readdirSync(target)
    } catch {
      return Effect.void // missing, or not a folder: open() reports a file in the way
    }
    if (names.length === 0 || holdsModel(names)) return Effect.void
    const shown = names.sort().slice(0, 3).join(", ") + (names.length > 3 ? `, … (${names.length} entries)` : "")
    return Effect.fail(new IoError.IoError({
      file: target,
      operation: "overwrite",
      detail: `this folder holds no model (no config.json or weights) but other files (${shown}); saving here would delete them — save to a new or empty folder, or remove them first`
    }))
  })

/**
 * Creates the temporary sibling of `target` (and `target`'s parent folders), after
 * {@link refuseForeign}. Until `publish`,
 * nothing appears at `target`; when the scope closes, an unpublished temporary is removed.
 *
 * @category constructors
 */
export const open = (target: string): Effect.Effect<Staging, IoError.IoError, Scope.Scope> =>
  Effect.gen(function* () {
    yield* refuseForeign(target)
    const parent = path.dirname(target)
    const name = path.basename(target)
    const state = { published: false }
    const temporary = yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          fs.mkdirSync(parent, { recursive: true })
          const existing = fs.lstatSync(target, { throwIfNoEntry: false })
          if (existing !== undefined && !existing.isDirectory()) throw new Error("it exists and is not a folder; remove it or save elsewhere")
          const dir = path.join(parent, `${Owner.temporaryName(`.${name}`)}${PARTIAL}`)
          fs.mkdirSync(dir)
          return dir
        },
        catch: (cause) => new IoError.IoError({ file: target, operation: "create", detail: IoError.describe(cause) })
      }),
      (dir, exit) => Effect.sync(() => {
        if (Exit.isFailure(exit) || !state.published) fs.rmSync(dir, { recursive: true, force: true })
      })
    )
    const publish = Effect.uninterruptible(Effect.try({
      try: () => {
        AtomicFile.fsyncDirectory(temporary)
        const aside = fs.existsSync(target) ? path.join(parent, `${Owner.temporaryName(`.${name}.${REPLACED}`)}${PARTIAL}`) : undefined
        if (aside !== undefined) fs.renameSync(target, aside)
        try {
          fs.renameSync(temporary, target)
        } catch (error) {
          if (aside !== undefined) fs.renameSync(aside, target)
          throw error
        }
        state.published = true
        AtomicFile.fsyncDirectory(parent)
        if (aside !== undefined) fs.rmSync(aside, { recursive: true, force: true })
      },
      catch: (cause) => new IoError.IoError({ file: target, operation: "rename into place", detail: IoError.describe(cause) })
    }))
    return { target, temporary, publish }
  })

/**
 * Removes the temporaries of `target` left by dead processes (see the module doc); a folder moved
 * aside whose replacement never arrived is put back. Returns what it removed or restored; never
 * fails.
 *
 * @category constructors
 */
export const sweep = (target: string): Effect.Effect<ReadonlyArray<string>> =>
  Effect.sync(() => {
    const parent = path.dirname(target)
    const prefix = `.${path.basename(target)}.`
    let names: Array<string>
    try {
      names = fs.readdirSync(parent)
    } catch {
      return []
    }
    const swept: Array<string> = []
    for (const name of names.sort()) {
      if (!name.startsWith(prefix) || !name.endsWith(PARTIAL)) continue
      const rest = name.slice(prefix.length)
      // Only this target's own temporaries: `<token>.<hex>.partial` or `replaced.<token>.<hex>.partial`.
      if (!/^(?:replaced\.)?\d+-\d+\.[0-9a-f]{12}\.partial$/.test(rest)) continue
      const owner = Owner.ownerOfName(name)
      if (owner === undefined || Owner.isAlive(owner)) continue
      const file = path.join(parent, name)
      try {
        if (rest.startsWith(`${REPLACED}.`) && !fs.existsSync(target)) fs.renameSync(file, target)
        else fs.rmSync(file, { recursive: true, force: true })
        swept.push(file)
      } catch { /* another process got there first: left as it is */ }
    }
    return swept
  })

/** Writes a whole file flushed to disk (the folder is published only after each of its files is). @category constructors */
export const writeFileSynced = (file: string, bytes: Uint8Array): void => {
  const fd = fs.openSync(file, "wx")
  try {
    let offset = 0
    while (offset < bytes.byteLength) offset += fs.writeSync(fd, bytes, offset, bytes.byteLength - offset)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}
