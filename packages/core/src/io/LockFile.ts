/**
 * A lock per key across processes: a file created with `O_EXCL` whose content (JSON) names its
 * {@link Holder}. A live holder — another process, or another fiber of this one — is waited for;
 * a dead one (`kill -9`, same host: `Owner.isAlive` false) does not block: its file is removed as
 * stale and the lock taken. A lock file that stays empty or unreadable for over 2 s (its creator
 * died between creating and writing it) is stale too. A holder on another host (machines sharing
 * the store over NFS: cluster workers) cannot be checked by pid, so holders renew a lease: every
 * 10 s they touch their lock file, and a holder on another host whose file has not been touched
 * for 2 minutes is taken as dead (its machine died, or was cut off). The lease is long because a
 * holder's event loop may be busy for a while and hosts' clocks may differ a little.
 *
 * Removing a stale lock safely. "Read, see a dead holder, delete" is a race: between the read
 * and the delete another process may have removed the stale file and taken the lock, and the
 * delete would then remove a live lock. So the deletion is done under a second, short-lived lock,
 * `<file>.break` (also `O_EXCL`, also naming its holder): whoever holds it re-reads the lock file
 * and deletes it only if it is still the very file found stale (same inode, same content). Only
 * a holder of `.break` ever deletes another's lock file, and a live holder only ever deletes its
 * own, so a stale file cannot change between that re-read and the delete. A `.break` held by a
 * dead process is itself removed by renaming it aside, checking the renamed file is the one seen
 * dead (inode and content) and deleting it, or else linking it back (`link` never replaces); only
 * two processes breaking the same dead `.break` at the same instant could still collide, and
 * `.break` is held for microseconds.
 *
 * @since 0.2.0
 */
import { Effect, type Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, IoError } from "./IoError.ts"
import * as Owner from "./Owner.ts"

/** Who holds a lock. @category models */
export interface Holder extends Owner.Owner {
  readonly acquiredAt: string
  /** What the holder does, for the people waiting (e.g. `{ runId, stage }`). */
  readonly info: Readonly<Record<string, string>>
}

/** Options of {@link acquire}. @category models */
export interface AcquireOptions {
  readonly info?: Readonly<Record<string, string>> | undefined
  /** Called once, when `acquire` finds the lock held by a live process and starts waiting. */
  readonly onWait?: ((holder: Holder) => Effect.Effect<void>) | undefined
}

const POLL = "100 millis"
/** How often a holder renews its lease (touches its lock file). */
const LEASE_RENEW = "10 seconds"
/** A lock file of a holder on another host untouched this long is stale. */
const LEASE_EXPIRY_MS = 120_000
/** How long a lock file may stay empty or unreadable before it is taken as stale. */
const UNREADABLE_STALE_MS = 2000

/**
 * Takes the lock at `file` for the scope; it is released (the file removed, only if it is still
 * ours) when the scope closes. Held by a live process (this one included, from another fiber):
 * waits, polling every 100 ms, and calls `onWait(holder)` once when it starts waiting. Held by a
 * dead process, or unreadable for over 2 s: removed as stale and retried. Parent folders are
 * created. Interruptible while waiting. @category constructors
 */
export const acquire = (file: string, options: AcquireOptions = {}): Effect.Effect<void, IoError, Scope.Scope> =>
  Effect.gen(function* () {
    let waiting = false
    while (true) {
      const taken = yield* Effect.uninterruptible(
        Effect.flatMap(tryCreate(file, options.info ?? {}), (mine) =>
          mine === undefined ? Effect.succeed(false) : Effect.as(Effect.addFinalizer(() => Effect.sync(() => release(file, mine))), true))
      )
      if (taken) return yield* Effect.forkScoped(renewLease(file))
      const seen = inspect(file)
      if (seen === undefined) {
        if (!fs.existsSync(file)) continue // released meanwhile
      } else if (isStale(seen)) {
        if (yield* breakStale(file, seen)) continue
      } else if (!waiting && seen.holder !== undefined) {
        waiting = true
        if (options.onWait !== undefined) yield* options.onWait(seen.holder)
      }
      yield* Effect.sleep(POLL)
    }
  })

// Touches the lock file while it is still ours (same holder text), so holders on other hosts see it alive.
const renewLease = (file: string) =>
  Effect.sleep(LEASE_RENEW).pipe(
    Effect.andThen(Effect.sync(() => {
      const now = new Date()
      try {
        fs.utimesSync(file, now, now)
      } catch {
        // Released or removed meanwhile: nothing to renew.
      }
    })),
    Effect.forever,
    Effect.asVoid
  )

/** Who holds the lock at `file` now; `undefined` when it is free or unreadable. @category getters */
export const holder = (file: string): Holder | undefined => inspect(file)?.holder

/** A lock file as read: its inode and text identify it; `holder` is undefined when unreadable. */
interface Seen {
  readonly ino: number
  readonly text: string
  readonly mtimeMs: number
  readonly holder: Holder | undefined
}

const sameFile = (a: Seen, b: Seen) => a.ino === b.ino && a.text === b.text

/** A lock file of a dead holder (on another host: one whose lease ran out), or one unreadable for over 2 s. */
const isStale = (seen: Seen) =>
  seen.holder === undefined
    ? Date.now() - seen.mtimeMs > UNREADABLE_STALE_MS
    : Owner.isLocal(seen.holder) ? !Owner.isAlive(seen.holder) : Date.now() - seen.mtimeMs > LEASE_EXPIRY_MS

/** Reads the lock file; `undefined` when there is none (or it cannot be opened). */
const inspect = (file: string): Seen | undefined => {
  let fd: number
  try {
    fd = fs.openSync(file, "r")
  } catch {
    return undefined
  }
  try {
    const stat = fs.fstatSync(fd)
    const text = fs.readFileSync(fd, "utf8")
    return { ino: stat.ino, text, mtimeMs: stat.mtimeMs, holder: parseHolder(text) }
  } catch {
    return undefined
  } finally {
    fs.closeSync(fd)
  }
}

const parseHolder = (text: string): Holder | undefined => {
  try {
    const json: unknown = JSON.parse(text)
    if (typeof json !== "object" || json === null) return undefined
    const h = json as Record<string, unknown>
    if (typeof h.pid !== "number" || typeof h.start !== "string" || typeof h.host !== "string") return undefined
    const info: Record<string, string> = {}
    if (typeof h.info === "object" && h.info !== null) {
      for (const [k, v] of Object.entries(h.info)) if (typeof v === "string") info[k] = v
    }
    return { pid: h.pid, start: h.start, host: h.host, acquiredAt: typeof h.acquiredAt === "string" ? h.acquiredAt : "", info }
  } catch {
    return undefined
  }
}

/** Creates `file` with `O_EXCL` holding this process as its holder: what was written, or `undefined` if it exists. */
const createExclusive = (file: string, info: Readonly<Record<string, string>>): Seen | undefined => {
  let fd: number
  try {
    fd = fs.openSync(file, "wx")
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return undefined
    throw error
  }
  const holder: Holder = { ...Owner.current(), acquiredAt: new Date().toISOString(), info: { ...info } }
  const text = JSON.stringify(holder)
  try {
    fs.writeSync(fd, text)
    const stat = fs.fstatSync(fd)
    return { ino: stat.ino, text, mtimeMs: stat.mtimeMs, holder }
  } catch (error) {
    fs.rmSync(file, { force: true })
    throw error
  } finally {
    fs.closeSync(fd)
  }
}

const tryCreate = (file: string, info: Readonly<Record<string, string>>): Effect.Effect<Seen | undefined, IoError> =>
  Effect.try({
    try: () => {
      fs.mkdirSync(path.dirname(file), { recursive: true })
      return createExclusive(file, info)
    },
    catch: (cause) => new IoError({ file, operation: "create lock", detail: describe(cause) })
  })

/** Removes `file` if it is still the one we created. */
const release = (file: string, mine: Seen): void => {
  const now = inspect(file)
  if (now !== undefined && sameFile(now, mine)) fs.rmSync(file, { force: true })
}

/**
 * Removes the stale lock `seen` under `<file>.break` (see the module doc): `true` when the caller
 * may retry at once (removed, or gone already), `false` when it should wait a poll first.
 * Synchronous, so no interruption or other fiber comes between taking `.break` and releasing it.
 */
const breakStaleNow = (file: string, seen: Seen): boolean => {
  const guard = `${file}.break`
  const mine = createExclusive(guard, { breaking: path.basename(file) })
  if (mine === undefined) {
    const other = inspect(guard)
    if (other !== undefined && isStale(other)) removeAside(guard, other)
    return false
  }
  try {
    const now = inspect(file)
    if (now !== undefined && sameFile(now, seen)) fs.rmSync(file, { force: true })
    return true
  } finally {
    release(guard, mine)
  }
}

const breakStale = (file: string, seen: Seen): Effect.Effect<boolean, IoError> =>
  Effect.try({ try: () => breakStaleNow(file, seen), catch: (cause) => new IoError({ file, operation: "remove stale lock", detail: describe(cause) }) })

/**
 * Removes the lock at `file` if its holder is dead (or it stayed unreadable for over 2 s), by the
 * same protocol `acquire` uses: what collectors of debris call (`crucible cache gc`, a run's
 * start). `true` when it was removed; never throws.
 */
export const removeIfStale = (file: string): boolean => {
  const seen = inspect(file)
  if (seen === undefined || !isStale(seen)) return false
  try {
    return breakStaleNow(file, seen) && !fs.existsSync(file)
  } catch {
    return false
  }
}

/** Renames `file` aside and deletes it if it is `seen`; otherwise puts it back where that is free. */
const removeAside = (file: string, seen: Seen): void => {
  const aside = path.join(path.dirname(file), `${Owner.temporaryName(`.${path.basename(file)}`)}.partial`)
  try {
    fs.renameSync(file, aside)
  } catch {
    return // gone already
  }
  const moved = inspect(aside)
  if (moved === undefined || !sameFile(moved, seen)) {
    try { fs.linkSync(aside, file) } catch { /* taken again meanwhile: the newer one stays */ }
  }
  fs.rmSync(aside, { force: true })
}
