/**
 * Writes that never leave a half-written output: bytes go to a temporary file beside the target,
 * which is fsynced and renamed over the target only when the whole write succeeded. A failure
 * or an interruption (SIGINT) removes the temporary file. A group of files (the shards of a
 * checkpoint and their index) is published together with {@link commitAll}: all appear, or none.
 *
 * A `kill -9` cannot run the cleanup: its temporary stays. Temporaries are therefore named after
 * their owner (`.model.safetensors.<pid>-<start>.<12 hex>.partial`, `Owner.ts`), and
 * {@link sweepOrphans} removes those of dead processes.
 *
 * An output larger than the page cache could keep ({@link OpenOptions.direct}, or any file of at
 * least `DirectRead.MIN_FILE_BYTES` under `CRUCIBLE_DIRECT_READS=on`) is written around the cache
 * (`DirectWrite`); `off` never. The bytes, the digest and the commit are the same.
 *
 * @since 0.1.0
 */
import { Effect, Exit, Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Digest from "./Digest.ts"
import * as DirectRead from "./DirectRead.ts"
import * as DirectWrite from "./DirectWrite.ts"
import { describe, IoError } from "./IoError.ts"
import * as Owner from "./Owner.ts"

/** An output being written. @category models */
export interface AtomicFile {
  readonly target: string
  readonly temporary: string
  /**
   * Appends bytes; completes when they are written and hashed (the caller may then reuse them).
   * Several writes may be in flight: each lands after the ones started before it.
   */
  readonly write: (bytes: Uint8Array) => Effect.Effect<void, IoError>
  /** Bytes written so far. */
  readonly written: () => number
  /** Of those, the bytes written around the page cache (`DirectWrite`); 0 for a file written through it. */
  readonly writtenDirectly: () => number
  /** The sha256 of everything written, hex; no write may follow. */
  readonly digest: Effect.Effect<string>
}

/** Options of {@link open}. @category models */
export interface OpenOptions {
  /** The size the file will have, when known: large files are hashed on a worker thread (`Digest.ts`). */
  readonly expectedBytes?: number
  /**
   * Write around the page cache (`DirectWrite`) when the policy (`DirectRead.policy`) is `auto`:
   * the writer says the whole output (all its files) exceeds what the cache could keep
   * (`DirectRead.exceedsCache`). Files under `DirectRead.MIN_FILE_BYTES` are written through it.
   */
  readonly direct?: boolean
}

/** An atomic file that can be committed: renamed into place, alone or with others. @category models */
export interface Committable extends AtomicFile {
  /** fsync, close and rename into place. */
  readonly commit: Effect.Effect<void, IoError>
  /** fsync and close, without renaming (the first half of a group commit). */
  readonly seal: Effect.Effect<void, IoError>
  /** Rename a sealed file into place (the second half). */
  readonly publish: Effect.Effect<void, IoError>
}

/**
 * Opens a temporary file for `target`. Nothing appears at `target` until `commit` (or `seal`
 * then `publish`); when the scope closes, a temporary file that was not published is deleted.
 */
export const open = (target: string, options: OpenOptions = {}): Effect.Effect<Committable, IoError, Scope.Scope> =>
  Effect.gen(function* () {
    const dir = path.dirname(target)
    const temporary = path.join(dir, `${Owner.temporaryName(`.${path.basename(target)}`)}${PARTIAL}`)
    const fd = yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          fs.mkdirSync(dir, { recursive: true })
          return fs.openSync(temporary, "wx")
        },
        catch: (cause) => new IoError({ file: target, operation: "create", detail: describe(cause) })
      }),
      (fd, exit) =>
        Effect.sync(() => {
          if (!state.closed) try { fs.closeSync(fd) } catch { /* best effort: the file is removed next */ }
          if (Exit.isFailure(exit) || !state.committed) fs.rmSync(temporary, { force: true })
        })
    )
    // `reserved`: where the next write goes, taken when the write starts; writes are positional,
    // so several may be in flight and land in the order they were started.
    const state = { committed: false, closed: false, written: 0, reserved: 0 }
    const digest = (options.expectedBytes ?? 0) >= Digest.WORKER_MIN_BYTES ? yield* Digest.onWorker() : Digest.inThread()
    const wantsDirect = DirectRead.wanted(options.expectedBytes ?? 0, options.direct === true)
    const directFd = wantsDirect ? yield* Effect.acquireRelease(
      Effect.sync(() => DirectRead.open(temporary, "write")),
      (dfd) => Effect.sync(() => {
        // `seal` closes only `fd`: this descriptor is closed here, after the staged writes drained (the
        // finalizer below). Best effort: seal's fsync covers the file whichever descriptor wrote it.
        if (dfd !== undefined) try { fs.closeSync(dfd) } catch { /* nothing left to lose */ }
      })
    ) : undefined
    const staged = directFd === undefined ? undefined : DirectWrite.make(fd, directFd)
    // Runs before both descriptors are closed (finalizers run last-added first): no staged write outlives them.
    if (staged !== undefined) yield* Effect.addFinalizer(() => Effect.promise(() => staged.drain()))
    const writeFailed = (cause: unknown) => new IoError({ file: target, operation: "write", detail: describe(cause) })
    // Staged (direct) writes go in call order, so `at` is implied; they are not flushed behind (they bypass the cache).
    const writeBytes = (bytes: Uint8Array, at: number): Effect.Effect<void, IoError> =>
      staged !== undefined
        ? Effect.map(Effect.tryPromise({ try: () => staged.append(bytes), catch: writeFailed }), () => void (state.written += bytes.byteLength))
        : Effect.callback<void, IoError>((resume) => {
          DirectWrite.writeFully(fd, bytes, at, (error) => {
            if (error) return resume(Effect.fail(writeFailed(error)))
            state.written += bytes.byteLength
            flushBehind()
            resume(Effect.void)
          })
        })
    // Large files are flushed to disk while they are written (one fdatasync in the thread pool
    // at a time, every FLUSH_BEHIND bytes), so the fsync of `seal` finds little left to write.
    // Only the final fsync is relied on: these are just early starts of the same work.
    let flushing: Array<() => void> | undefined
    let flushedAt = 0
    const flushBehind = () => {
      if (flushing !== undefined || state.closed || state.written - flushedAt < FLUSH_BEHIND) return
      const waiting: Array<() => void> = (flushing = [])
      flushedAt = state.written
      fs.fdatasync(fd, () => {
        flushing = undefined
        for (const resume of waiting) resume()
      })
    }
    // The descriptor stays open until an early flush is done with it.
    const flushed = Effect.callback<void>((resume) => {
      if (flushing === undefined) resume(Effect.void)
      else flushing.push(() => resume(Effect.void))
    })
    // Hashed while the thread pool writes: both only read `bytes`, and the digest is only used
    // after a successful commit. The hash sees the bytes in the order the writes were started.
    const write = (bytes: Uint8Array) =>
      Effect.suspend(() => {
        const at = state.reserved
        state.reserved += bytes.byteLength
        return Effect.asVoid(Effect.all([writeBytes(bytes, at), digest.update(bytes)], { concurrency: 2 }))
      })
    // Direct writes: everything staged goes out (the last block's tail through `fd`) before the fsync.
    const stagedOut = staged === undefined ? Effect.void : Effect.tryPromise({ try: () => staged.flush(), catch: writeFailed })
    const seal = Effect.andThen(Effect.andThen(flushed, stagedOut), Effect.try({
      try: () => {
        if (state.closed) return
        fs.fsyncSync(fd)
        state.closed = true
        fs.closeSync(fd)
      },
      catch: (cause) => new IoError({ file: target, operation: "flush to disk", detail: describe(cause) })
    }))
    const publish = Effect.try({
      try: () => {
        fs.renameSync(temporary, target)
        state.committed = true
      },
      catch: (cause) => new IoError({ file: target, operation: "rename into place", detail: describe(cause) })
    })
    const commit = Effect.andThen(seal, publish)
    return {
      target,
      temporary,
      write,
      commit,
      seal,
      publish,
      written: () => state.written,
      writtenDirectly: () => staged?.directBytes() ?? 0,
      digest: digest.hex
    }
  })

const FLUSH_BEHIND = 32 * 1024 * 1024
const PARTIAL = ".partial"
/** Temporaries named before owners were recorded: `.name.<12 hex>.partial`. */
const LEGACY_PARTIAL = /^\..+\.[0-9a-f]{12}\.partial$/
/** How old a temporary without an owner must be before {@link sweepOrphans} removes it. */
const LEGACY_MAX_AGE_MS = 60 * 60 * 1000

/**
 * Removes the temporaries left in `dir` (not below it) by processes that died before they could
 * clean up (`kill -9`, power loss): `.*.partial` files whose owner is dead (`Owner.isAlive`), and
 * files of the older format without an owner once unmodified for over an hour (a live writer's
 * appends keep moving its mtime). Temporaries of live processes, this one included, are kept. Returns the removed paths;
 * never fails (a missing or unreadable `dir` has nothing to sweep; a file that cannot be removed
 * is skipped).
 */
export const sweepOrphans = (dir: string): Effect.Effect<ReadonlyArray<string>> =>
  Effect.sync(() => {
    let names: Array<string>
    try {
      names = fs.readdirSync(dir)
    } catch {
      return []
    }
    const removed: Array<string> = []
    const now = Date.now()
    for (const name of names) {
      if (!name.startsWith(".") || !name.endsWith(PARTIAL)) continue
      const file = path.join(dir, name)
      const owner = Owner.ownerOfName(name)
      try {
        if (owner !== undefined) {
          if (Owner.isAlive(owner)) continue
        } else {
          if (!LEGACY_PARTIAL.test(name)) continue
          const stat = fs.lstatSync(file)
          if (!stat.isFile() || now - stat.mtimeMs < LEGACY_MAX_AGE_MS) continue
        }
        fs.rmSync(file)
        removed.push(file)
      } catch { /* gone already, or not ours to remove: left as it is */ }
    }
    return removed
  })

/**
 * Publishes a group of files together: all are flushed first, then renamed into place; if a
 * rename fails, the files of the group already renamed are removed again, so a reader never
 * sees part of the group (a previous version of an overwritten file is not restored).
 * Uninterruptible: an interruption waits until the group is in place or rolled back.
 */
export const commitAll = (files: ReadonlyArray<Committable>): Effect.Effect<void, IoError> =>
  Effect.uninterruptible(
    Effect.gen(function* () {
      for (const file of files) yield* file.seal
      const published: Array<Committable> = []
      for (const file of files) {
        const exit = yield* Effect.exit(file.publish)
        if (Exit.isFailure(exit)) {
          for (const done of published) yield* Effect.sync(() => fs.rmSync(done.target, { force: true }))
          return yield* exit
        }
        published.push(file)
      }
      for (const dir of new Set(files.map((f) => path.dirname(f.target)))) yield* syncDirectory(dir)
    })
  )

/**
 * Makes the entries of `dir` (renames into it) durable; directories that cannot be opened for
 * fsync are skipped. Synchronous, for writers that publish whole folders too.
 */
export const fsyncDirectory = (dir: string): void => {
  try {
    const fd = fs.openSync(dir, "r")
    try { fs.fsyncSync(fd) } finally { fs.closeSync(fd) }
  } catch { /* not supported on every filesystem: the rename itself is already atomic */ }
}

const syncDirectory = (dir: string) => Effect.sync(() => fsyncDirectory(dir))

/**
 * Fails when a target is one of `inputs` (after resolving links): a model must not be written
 * over a file its lazy tensors are read from, whose later reads by path would see the output.
 */
export const refuseOverwrite = (targets: ReadonlyArray<string>, inputs: ReadonlyArray<string>): Effect.Effect<void, IoError> => {
  const real = (p: string) => {
    try { return fs.realpathSync(p) } catch { return path.resolve(p) }
  }
  const sources = new Set(inputs.map(real))
  const clash = targets.find((t) => sources.has(real(t)))
  return clash === undefined ? Effect.void : Effect.fail(new IoError({ file: clash, operation: "overwrite", detail: "it is one of the files this model is read from; write to another path" }))
}

/** Writes a whole small file (JSON, an index) atomically. */
export const writeWhole = (target: string, contents: string | Uint8Array): Effect.Effect<void, IoError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const file = yield* open(target)
      yield* file.write(typeof contents === "string" ? new TextEncoder().encode(contents) : contents)
      yield* file.commit
    })
  )
