/**
 * What the results store holds (store/Layout.ts), measured, and its garbage collection — the
 * programmatic side of `crucible cache ls|du|gc`.
 *
 * - {@link list}: one entry per stored result (its `result.json`), most recently used first; the
 *   last use is the mtime of `result.json` (the store touches it on every reuse).
 * - {@link usage}: bytes on disk of results (by type), work folders (checkpoints), tmp, digests.
 * - {@link gc}: removes debris always (tmp entries whose owner process is dead, lock files of dead
 *   holders); with `olderThanMs`, results unused for longer and work folders untouched for
 *   longer; with `maxSize`, then the least recently used results until the results fit.
 *
 * Nothing whose lock (`locks/<key>.lock`) is held by a live process is removed: that key is being
 * computed or published now. A result is removed by renaming its folder into `tmp/` under a name
 * that carries this process as its owner, then deleting it: a reader never sees half a result,
 * and if this process dies while deleting, the next gc removes the rest as a dead owner's tmp.
 *
 * @since 0.2.0
 */
import { IoError, LockFile, Owner } from "@crucible/core"
import { Effect, Result } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Layout from "./Layout.ts"

/** A stored result. @category models */
export interface Entry {
  readonly key: string
  /** From `result.json`; `"?"` when it cannot be read (such a folder is still measured and collected). */
  readonly kind: string
  readonly stage: string
  readonly runId: string
  readonly type: string
  /** Bytes on disk of the result's folder. */
  readonly bytes: number
  readonly createdAt: string
  /** Milliseconds since the epoch: the mtime of `result.json`. */
  readonly lastUsed: number
  readonly dir: string
}

/** Bytes on disk, by part of the store. @category models */
export interface Usage {
  readonly results: { readonly bytes: number; readonly count: number; readonly byType: Readonly<Record<string, number>> }
  readonly work: number
  readonly tmp: number
  readonly digests: number
  /** Everything else under the root (locks, files of older layouts). */
  readonly other: number
  readonly total: number
}

/** What {@link gc} removes beyond debris. @category models */
export interface GcOptions {
  /** Results unused, and work folders untouched, for longer than this are removed. */
  readonly olderThanMs?: number | undefined
  /** Then the least recently used results are removed until the results total at most this. */
  readonly maxSize?: number | undefined
  /** Report what would be removed; remove nothing. */
  readonly dryRun?: boolean | undefined
  /** The time ages are measured at (default: now). */
  readonly now?: number | undefined
}

/** One removal (or, in a dry run, one that would be made). @category models */
export interface Removal {
  readonly what: "result" | "work" | "tmp" | "lock"
  readonly path: string
  readonly key?: string | undefined
  readonly kind?: string | undefined
  readonly bytes: number
  readonly reason: string
}

/** What {@link gc} did. @category models */
export interface GcReport {
  readonly dryRun: boolean
  readonly removed: ReadonlyArray<Removal>
  /** Entries it would have removed but left: locked by a live process, or not removable. */
  readonly kept: ReadonlyArray<{ readonly path: string; readonly reason: string }>
  readonly freed: number
  /** The results' total after the collection. */
  readonly resultsBytes: number
}

const names = (dir: string): Array<string> => {
  try {
    return fs.readdirSync(dir)
  } catch {
    return []
  }
}

const lstat = (p: string): fs.Stats | undefined => {
  try {
    return fs.lstatSync(p)
  } catch {
    return undefined
  }
}

/** Bytes of the files under `p` (symlinks counted as themselves, never followed). @category getters */
export const sizeOf = (p: string): number => {
  const stat = lstat(p)
  if (stat === undefined) return 0
  if (!stat.isDirectory()) return stat.size
  return names(p).reduce((sum, name) => sum + sizeOf(path.join(p, name)), 0)
}

/** The newest mtime of `p` and its direct entries: when a work folder was last written. */
const touchedAt = (p: string): number =>
  names(p).reduce((latest, name) => Math.max(latest, lstat(path.join(p, name))?.mtimeMs ?? 0), lstat(p)?.mtimeMs ?? 0)

const readEntry = (root: string, key: string): Entry | undefined => {
  const dir = Layout.resultDir(root, key)
  const dirStat = lstat(dir)
  if (dirStat === undefined || !dirStat.isDirectory()) return undefined
  const file = Layout.resultFile(root, key)
  let record: Partial<Layout.ResultRecord> = {}
  try {
    record = JSON.parse(fs.readFileSync(file, "utf8")) as Partial<Layout.ResultRecord>
  } catch {
    // An unreadable record: listed as unknown, still measured and collectable.
  }
  const text = (v: unknown, fallback: string) => (typeof v === "string" ? v : fallback)
  return {
    key,
    kind: text(record.kind, "?"),
    stage: text(record.stage, "?"),
    runId: text(record.runId, "?"),
    type: text(record.type, "?"),
    bytes: sizeOf(dir),
    createdAt: text(record.createdAt, ""),
    lastUsed: lstat(file)?.mtimeMs ?? dirStat.mtimeMs,
    dir
  }
}

/** The stored results under `root`, most recently used first. @category getters */
export const list = Effect.fn("Inventory.list")(function* (root: string) {
  const entries = names(path.join(root, Layout.RESULTS)).flatMap((key) => readEntry(root, key) ?? [])
  return entries.sort((a, b) => b.lastUsed - a.lastUsed || (a.key < b.key ? -1 : 1)) as ReadonlyArray<Entry>
})

/** Bytes on disk of each part of the store under `root`. @category getters */
export const usage = Effect.fn("Inventory.usage")(function* (root: string) {
  const entries = yield* list(root)
  const byType: Record<string, number> = {}
  for (const e of entries) byType[e.type] = (byType[e.type] ?? 0) + e.bytes
  const results = entries.reduce((sum, e) => sum + e.bytes, 0)
  const work = sizeOf(path.join(root, Layout.WORK))
  const tmp = sizeOf(Layout.tmpDir(root))
  const digests = sizeOf(Layout.digestsDir(root))
  const total = sizeOf(root)
  return { results: { bytes: results, count: entries.length, byType }, work, tmp, digests, other: Math.max(0, total - results - work - tmp - digests), total } satisfies Usage
})

/** The live process holding the lock of `key`, if any. */
const liveHolder = (root: string, key: string): LockFile.Holder | undefined => {
  const holder = LockFile.holder(Layout.lockFile(root, key))
  return holder !== undefined && Owner.isAlive(holder) ? holder : undefined
}

const lockedReason = (holder: LockFile.Holder) =>
  `locked by live process ${holder.pid}${holder.info.runId === undefined ? "" : ` (run ${holder.info.runId}${holder.info.stage === undefined ? "" : `, stage ${holder.info.stage}`})`}`

/** Moves `p` into `tmp/` under a name owned by this process, then deletes it. */
const removeViaTmp = (root: string, p: string): void => {
  fs.mkdirSync(Layout.tmpDir(root), { recursive: true })
  const aside = path.join(Layout.tmpDir(root), Owner.temporaryName("gc"))
  fs.renameSync(p, aside)
  fs.rmSync(aside, { recursive: true, force: true })
}

/** What a collection removes and keeps; `attempt` removes (unless a dry run) and records. */
const collector = (dryRun: boolean, now: number, olderThanMs: number | undefined) => {
  const removed: Array<Removal> = []
  const kept: Array<{ path: string; reason: string }> = []
  const attempt = (removal: Removal, remove: () => void): boolean => {
    if (!dryRun) {
      try {
        remove()
      } catch (cause) {
        kept.push({ path: removal.path, reason: `cannot remove: ${IoError.describe(cause)}` })
        return false
      }
    }
    removed.push(removal)
    return true
  }
  const old = (mtimeMs: number) => olderThanMs !== undefined && now - mtimeMs > olderThanMs
  return { removed, kept, attempt, old, now }
}

// Debris: temporaries of dead owners (and ownerless ones `old`), lock files of dead holders.
const removeDebrisWith = (root: string, { attempt, old, now }: Pick<ReturnType<typeof collector>, "attempt" | "old" | "now">): void => {
  // Temporaries of dead owners (results being published when their process died).
  const tmp = Layout.tmpDir(root)
  for (const name of names(tmp)) {
    const p = path.join(tmp, name)
    const owner = Owner.ownerOfName(name)
    const dead = owner !== undefined && !Owner.isAlive(owner)
    const stray = owner === undefined && old(lstat(p)?.mtimeMs ?? now)
    if (!dead && !stray) continue
    attempt({ what: "tmp", path: p, bytes: sizeOf(p), reason: dead ? `its owner (pid ${owner!.pid}) is dead` : "no owner, untouched for long" }, () =>
      fs.rmSync(p, { recursive: true, force: true }))
  }
  // Debris: lock files whose holder is dead (LockFile.acquire would take them over anyway).
  const locks = path.join(root, "locks")
  for (const name of names(locks)) {
    if (!name.endsWith(".lock")) continue
    const file = path.join(locks, name)
    const holder = LockFile.holder(file)
    if (holder === undefined || Owner.isAlive(holder)) continue
    attempt({ what: "lock", path: file, key: name.slice(0, -".lock".length), bytes: sizeOf(file), reason: `its holder (pid ${holder.pid}) is dead` }, () => {
      if (!LockFile.removeIfStale(file)) throw new Error("it changed, or another process is removing it")
    })
  }

}

/**
 * Removes the store's debris — temporaries of dead owners (results being published when their
 * process died), lock files of dead holders — as `gc` does first: what a run's start does too.
 * Never fails. @category constructors
 */
export const removeDebris = (root: string): ReadonlyArray<Removal> => {
  const collect = collector(false, Date.now(), undefined)
  removeDebrisWith(root, collect)
  return collect.removed
}

/**
 * Collects the store under `root` (see the module doc). Never fails: what cannot be removed is
 * reported in `kept`. @category constructors
 */
export const gc = Effect.fn("Inventory.gc")(function* (root: string, options: GcOptions = {}) {
  const dryRun = options.dryRun === true
  const now = options.now ?? Date.now()
  const collect = collector(dryRun, now, options.olderThanMs)
  const { removed, kept, attempt, old } = collect
  const age = (mtimeMs: number) => `unused for ${ago(now - mtimeMs)}`
  removeDebrisWith(root, collect)

  // Results: unused for too long, then the least recently used until they fit.
  const entries = [...(yield* list(root))].reverse() // least recently used first
  let resultsBytes = entries.reduce((sum, e) => sum + e.bytes, 0)
  const removeResult = (e: Entry, reason: string) => {
    const holder = liveHolder(root, e.key)
    if (holder !== undefined) return void kept.push({ path: e.dir, reason: lockedReason(holder) })
    if (attempt({ what: "result", path: e.dir, key: e.key, kind: e.kind, bytes: e.bytes, reason }, () => removeViaTmp(root, e.dir))) resultsBytes -= e.bytes
  }
  const left: Array<Entry> = []
  for (const e of entries) {
    if (old(e.lastUsed)) removeResult(e, age(e.lastUsed))
    else left.push(e)
  }
  if (options.maxSize !== undefined) {
    for (const e of left) {
      if (resultsBytes <= options.maxSize) break
      removeResult(e, `least recently used (${age(e.lastUsed)}), results over ${options.maxSize} bytes`)
    }
  }

  // Work folders (checkpoints of stages that never finished) untouched for too long.
  if (options.olderThanMs !== undefined) {
    const work = path.join(root, Layout.WORK)
    for (const key of names(work)) {
      const dir = Layout.workDir(root, key)
      const touched = touchedAt(dir)
      if (!old(touched)) continue
      const holder = liveHolder(root, key)
      if (holder !== undefined) {
        kept.push({ path: dir, reason: lockedReason(holder) })
        continue
      }
      attempt({ what: "work", path: dir, key, bytes: sizeOf(dir), reason: `untouched for ${ago(now - touched)}` }, () => removeViaTmp(root, dir))
    }
  }
  return { dryRun, removed, kept, freed: removed.reduce((sum, r) => sum + r.bytes, 0), resultsBytes } satisfies GcReport
})

/** `90 min`, `30 h`, `9 d`: an age as people say it. */
const ago = (ms: number): string =>
  ms < 2 * 3_600_000 ? `${Math.floor(ms / 60_000)} min` : ms < 2 * 86_400_000 ? `${Math.floor(ms / 3_600_000)} h` : `${Math.floor(ms / 86_400_000)} d`

const UNIT_MS: Readonly<Record<string, number>> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 }

/** `"30m"`, `"12h"`, `"7d"`, `"2w"` → milliseconds; a positive number and one of m, h, d, w. @category parsing */
export const parseAge = (input: string): Result.Result<number, IoError.InvalidArgument> => {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$/i.exec(input)
  const ms = match === null ? NaN : Number(match[1]) * UNIT_MS[match[2]!.toLowerCase()]!
  return Number.isFinite(ms) && ms > 0
    ? Result.succeed(ms)
    : Result.fail(new IoError.InvalidArgument({ argument: "age", value: JSON.stringify(input), detail: 'expected a number and a unit: m (minutes), h (hours), d (days) or w (weeks), like "30m", "12h", "7d" or "2w"' }))
}
