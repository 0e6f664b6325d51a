/**
 * Content digests of the files (and folders) a run reads, for stage keys and the manifest,
 * remembered across runs by device, inode, size and modification time (nanoseconds) in the
 * store's `digests/` folder — so a rerun over multi-gigabyte checkpoints does not hash them
 * again, while a file re-saved in place (a new mtime) or replaced (a new inode) is hashed anew.
 * One entry per file, written atomically: concurrent runs never corrupt each other's entries.
 *
 * A folder's digest (a Hugging Face model folder) is the sha256 of its regular files' relative
 * paths and digests, sorted, hidden names (temporaries, `.git`) left out.
 *
 * Made with a run's `ReadTap.Taps`, a file the run taps is not read again to be hashed: its digest
 * is finished from the reads the stages made (`ReadTap.finish`), and remembered as any other when
 * the file did not change meanwhile. {@link FileDigests.known} answers without hashing anything:
 * what the stage keys can know before any stage runs.
 *
 * @since 0.2.0
 */
import { AtomicFile, Digest, ReadCounter, ReadTap } from "@crucible/core"
import { Effect, Semaphore } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"

/** The digest of a file or folder; `missing` when it cannot be read (the stage that reads it fails with the reason). @category models */
export interface Digested {
  readonly path: string
  readonly bytes: number
  readonly sha256: string
}

/** @category models */
export interface FileDigests {
  /** The digest of a file or a folder (recursively), from the remembered entry when the file is unchanged. */
  readonly of: (file: string) => Effect.Effect<Digested>
  /** The remembered digest of an unchanged file or folder (every file of it), without hashing; undefined when some part is not remembered. */
  readonly known: (file: string) => string | undefined
  /** The regular files a digest of `file` hashes: itself, or a folder's files (as {@link of} lists them). */
  readonly filesOf: (file: string) => ReadonlyArray<string>
  /** Remembers the digest of a file this process just wrote (its writer hashed it on the way out). */
  readonly remember: (file: string, sha256: string) => Effect.Effect<void>
}

/** Files hashed at once (each on its own worker thread). */
const HASHING_AT_ONCE = 2

interface Entry {
  readonly size: string
  readonly mtimeNs: string
  readonly sha256: string
}

/** Digests remembered in `dir` (created when first written); files `taps` taps are finished from their reads. @category constructors */
export const make = (dir: string, taps?: ReadTap.Taps): Effect.Effect<FileDigests> =>
  Effect.gen(function* () {
    const hashing = yield* Semaphore.make(HASHING_AT_ONCE)
    // Hashing to name a value is not a read of the pipeline's: it is kept out of the run's counts (and taps).
    const hash = (file: string): Effect.Effect<Digest.FileDigest & { readonly unchanged?: boolean } | undefined> =>
      taps?.has(file) === true
        ? taps.finish(file)
        : hashing.withPermits(1)(Digest.ofFile(file)).pipe(Effect.provideService(ReadCounter.ReadCounter, ReadCounter.none), Effect.provideService(ReadTap.ReadTap, ReadTap.none))
    const entryFile = (stat: fs.BigIntStats) => path.join(dir, `${stat.dev}-${stat.ino}.json`)
    const remembered = (stat: fs.BigIntStats): string | undefined => {
      try {
        const entry = JSON.parse(fs.readFileSync(entryFile(stat), "utf8")) as Entry
        return entry.size === String(stat.size) && entry.mtimeNs === String(stat.mtimeNs) ? entry.sha256 : undefined
      } catch {
        return undefined
      }
    }
    const store = (stat: fs.BigIntStats, sha256: string) => {
      const entry: Entry = { size: String(stat.size), mtimeNs: String(stat.mtimeNs), sha256 }
      return Effect.ignore(Effect.andThen(Effect.sync(() => fs.mkdirSync(dir, { recursive: true })), AtomicFile.writeWhole(entryFile(stat), JSON.stringify(entry))))
    }
    const remember = (file: string, sha256: string) =>
      Effect.suspend(() => {
        const stat = statOf(file)
        return stat === undefined || !stat.isFile() ? Effect.void : store(stat, sha256)
      })
    const ofFile = (file: string, stat: fs.BigIntStats): Effect.Effect<Digested> =>
      Effect.gen(function* () {
        const known = remembered(stat)
        if (known !== undefined) return { path: file, bytes: Number(stat.size), sha256: known }
        const digest = yield* hash(file)
        if (digest === undefined) return { path: file, bytes: 0, sha256: MISSING }
        // Remembered only if the file did not change while it was hashed (a tap checks since it was wanted).
        const after = statOf(file)
        if (digest.unchanged !== false && after !== undefined && after.mtimeNs === stat.mtimeNs && after.size === stat.size) yield* store(stat, digest.sha256)
        return { path: file, bytes: digest.bytes, sha256: digest.sha256 }
      })
    const ofFolder = (folder: string): Effect.Effect<Digested> =>
      Effect.gen(function* () {
        const files = listFiles(folder)
        const digests = yield* Effect.forEach(files, (f) => {
          const stat = statOf(f)
          return stat === undefined ? Effect.succeed({ path: f, bytes: 0, sha256: MISSING }) : ofFile(f, stat)
        }, { concurrency: HASHING_AT_ONCE })
        return { path: folder, bytes: digests.reduce((n, d) => n + d.bytes, 0), sha256: folderDigest(folder, digests) }
      })
    const of = (file: string): Effect.Effect<Digested> =>
      Effect.suspend(() => {
        const stat = statOf(file)
        if (stat === undefined) return Effect.succeed({ path: file, bytes: 0, sha256: MISSING })
        return stat.isDirectory() ? ofFolder(file) : ofFile(file, stat)
      })
    const known = (file: string): string | undefined => {
      const stat = statOf(file)
      if (stat === undefined) return undefined
      if (!stat.isDirectory()) return remembered(stat)
      const entries: Array<{ readonly path: string; readonly sha256: string }> = []
      for (const f of listFiles(file)) {
        const fileStat = statOf(f)
        const sha256 = fileStat === undefined ? undefined : remembered(fileStat)
        if (sha256 === undefined) return undefined
        entries.push({ path: f, sha256 })
      }
      return folderDigest(file, entries)
    }
    const filesOf = (file: string) => (statOf(file)?.isDirectory() === true ? listFiles(file) : [file])
    return { of, known, filesOf, remember }
  })

// A folder's digest from its files' (as `listFiles` lists them): their relative paths and digests.
const folderDigest = (folder: string, files: ReadonlyArray<{ readonly path: string; readonly sha256: string }>): string => {
  const hash = createHash("sha256")
  for (const f of files) hash.update(`${path.relative(folder, f.path).split(path.sep).join("/")}\0${f.sha256}\n`)
  return hash.digest("hex")
}

/** The digest of what could not be read. */
export const MISSING = "missing"

const statOf = (file: string): fs.BigIntStats | undefined => {
  try {
    return fs.statSync(file, { bigint: true })
  } catch {
    return undefined
  }
}

// Regular files under `folder`, sorted by relative path; hidden names (temporaries, .git) skipped.
// A symlink to a folder is followed (its files are what a reader of the folder reads; hashing the
// link as a file would read nothing and give every contents one digest); a link back to a folder
// it is inside (a cycle) is not.
const listFiles = (folder: string): ReadonlyArray<string> => {
  const out: Array<string> = []
  const visit = (dir: string, above: ReadonlySet<string>) => {
    let entries: Array<fs.Dirent>
    let real: string
    try {
      real = fs.realpathSync(dir)
      if (above.has(real)) return
      entries = fs.readdirSync(dir, { withFileTypes: true })
    } catch {
      return
    }
    const inside = new Set([...above, real])
    for (const e of entries) {
      if (e.name.startsWith(".")) continue
      const full = path.join(dir, e.name)
      if (e.isDirectory() || (e.isSymbolicLink() && statOf(full)?.isDirectory() === true)) visit(full, inside)
      else if (e.isFile() || e.isSymbolicLink()) out.push(full)
    }
  }
  visit(folder, new Set())
  return out.sort()
}
