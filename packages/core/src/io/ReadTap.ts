/**
 * Content digests from the bytes a run reads anyway. A merge reads its input checkpoints once,
 * mostly in file order; hashing them again for the stage keys and the manifest would be a second
 * pass over tens of gigabytes. A {@link Taps} is told which files' digests are wanted ({@link Taps.want});
 * `ByteSource.open` takes the {@link ReadTap} in effect (as it takes the `ReadCounter`), and every
 * read whose range reaches the point the file's hash stands at is fed to a running sha256 on a
 * worker thread (`Digest.onWorker`). {@link Taps.finish} then hashes only what no read fed (reads
 * out of order, tensors nobody read) from that point to the end.
 *
 * The reader's bytes are copied into a bounded ring of `SharedArrayBuffer` chunks per file
 * ({@link PIECE_BYTES} each, {@link QUEUE_BYTES} in all), which the worker hashes in place (a
 * chunk is posted by number once full: small reads are packed, no copy crosses threads). Once the
 * reads have fed the whole file its digest is computed at once and its ring and worker released, so
 * a run over many shards holds rings only for the files being read. A reader
 * waits only while every chunk is being hashed (back-pressure, counted in {@link TapStats.waits})
 * or while an earlier read of the same file, issued before its own, is still in flight (bytes are
 * hashed in file order). A read reserves its range when it is issued,
 * so concurrent reads of consecutive ranges are all fed.
 *
 * When the files wanted exceed what the page cache could hold (`cacheBytes` of {@link make}: a first run
 * over checkpoints larger than the memory), `ByteSource` reads them around the cache
 * (`DirectRead`: `O_DIRECT` into page-aligned shared slots) and lends each slot to the hash
 * ({@link Ticket.lend}): the worker hashes it where it is, no copy into the ring, and the slot is
 * read into again once hashed.
 *
 * @since 0.3.0
 */
import { Context, Effect, Exit, Scope } from "effect"
import * as fs from "node:fs"
import * as Digest from "./Digest.ts"
import * as DirectRead from "./DirectRead.ts"
import * as ReadCounter from "./ReadCounter.ts"

/** A reserved range of a tapped file: the read that reserved it hands its bytes over (or gives up). @category models */
export interface Ticket {
  /** The read's bytes (the whole read; the ticket knows which part it feeds). A promise: wait before reusing them. */
  readonly fill: (bytes: Uint8Array) => Promise<void> | undefined
  /** The read failed: the hash cannot go on from the reads (the file is hashed whole when finished). */
  readonly fail: () => void
  /**
   * Instead of `fill`: the read's bytes in shared memory, hashed where they are (no copy). The
   * promise settles once they are hashed: keep them until then. Undefined when they cannot be
   * taken now (an earlier read of the file is still in flight, or the bytes are not shared):
   * `fill` them then.
   */
  readonly lend: (bytes: Uint8Array) => Promise<void> | undefined
}

/** One tapped file, as `ByteSource` sees it. @category models */
export interface Tap {
  /** A ticket when the range `[offset, offset + length)` reaches where the hash stands, else undefined. */
  readonly reserve: (offset: number, length: number) => Ticket | undefined
  /**
   * Whether to read the file around the page cache (`DirectRead`, policy "auto"): the files wanted so
   * far, together, exceed `cacheBytes` (half the memory by default); read through the page cache they
   * would evict one another before a later run could find them there.
   */
  readonly direct: boolean
}

/** What `ByteSource.open` asks: the tap of the file open at `fd`, if its digest is wanted. @category models */
export interface ReadTap {
  readonly forFile: (fd: number) => Tap | undefined
}

/** Taps nothing: the default. @category constructors */
export const none: ReadTap = { forFile: () => undefined }

/** The tap reads are fed to (default: {@link none}). @category services */
export const ReadTap = Context.Reference<ReadTap>("crucible/ReadTap", { defaultValue: () => none })

/** A finished file's digest; `unchanged`: the file kept its size and mtime from `want` to the end. @category models */
export interface TappedDigest extends Digest.FileDigest {
  readonly unchanged: boolean
  /** Bytes hashed from the reads (the rest was read again by `finish`). */
  readonly fed: number
}

/** Counts over every tap, for tests and benchmarks. @category models */
export interface TapStats {
  /** Bytes hashed from reads. */
  readonly fed: number
  /** Bytes `finish` read again (what no read fed in order). */
  readonly reread: number
  /** Times a reader waited for room in a full queue. */
  readonly waits: number
  /** Of `fed`, bytes hashed where a direct read left them ({@link Ticket.lend}: no copy into the ring). */
  readonly lent: number
}

/** @category models */
export interface Taps extends ReadTap {
  /** Hash `file` (a regular file) from the reads of it from now on; false when it cannot be stat'ed. */
  readonly want: (file: string) => boolean
  /** Whether `file` is tapped and not yet finished. */
  readonly has: (file: string) => boolean
  /**
   * The digest of a tapped `file`: no read is fed after this starts; in-flight reads are waited for,
   * then the rest of the file is hashed. Undefined when `file` is not tapped or cannot be read.
   * Calls for one file share the one result.
   */
  readonly finish: (file: string) => Effect.Effect<TappedDigest | undefined>
  readonly stats: () => TapStats
}

/** Bytes of one chunk of the ring. @category constants */
export const PIECE_BYTES = 1024 * 1024
/** The ring's bytes per file (copied, not yet hashed) before readers wait. @category constants */
export const QUEUE_BYTES = 8 * 1024 * 1024

interface FileTap extends Tap {
  readonly finish: Effect.Effect<TappedDigest | undefined>
}

/**
 * Taps whose workers live as long as the current scope. `queueBytes` bounds each file's ring. @category constructors
 */
export const make = (options: { readonly queueBytes?: number; readonly cacheBytes?: number } = {}): Effect.Effect<Taps, never, Scope.Scope> =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    const byPath = new Map<string, FileTap>()
    const byInode = new Map<string, { readonly stat: fs.BigIntStats; readonly tap: FileTap }>()
    const stats = { fed: 0, reread: 0, waits: 0, lent: 0 }
    const queueBytes = Math.max(PIECE_BYTES, options.queueBytes ?? QUEUE_BYTES)
    let wantedBytes = 0
    const direct = () => (options.cacheBytes === undefined ? DirectRead.exceedsCache(wantedBytes) : wantedBytes > options.cacheBytes)
    const want = (file: string) => {
      if (byPath.has(file)) return true
      const stat = statOf(file)
      if (stat === undefined || !stat.isFile()) return false
      wantedBytes += Number(stat.size)
      const tap = fileTap(file, stat, scope, queueBytes, stats, direct)
      byPath.set(file, tap)
      byInode.set(inode(stat), { stat, tap })
      return true
    }
    const forFile = (fd: number) => {
      if (byInode.size === 0) return undefined
      const stat = fs.fstatSync(fd, { bigint: true })
      const found = byInode.get(inode(stat))
      // A file rewritten since it was wanted is not fed: its finish sees the change and remembers nothing.
      return found !== undefined && sameVersion(found.stat, stat) ? found.tap : undefined
    }
    const finished = new Map<string, Effect.Effect<TappedDigest | undefined>>()
    const finish = (file: string) =>
      Effect.suspend(() => {
        const tap = byPath.get(file)
        if (tap === undefined) return Effect.succeed(undefined)
        let once = finished.get(file)
        if (once === undefined) {
          once = Effect.runSync(Effect.cached(tap.finish))
          finished.set(file, once)
        }
        return once
      })
    return { want, has: (file) => byPath.has(file) && !finished.has(file), forFile, finish, stats: () => ({ ...stats }) }
  })

const fileTap = (file: string, stat: fs.BigIntStats, runScope: Scope.Scope, queueBytes: number, stats: { fed: number; reread: number; waits: number; lent: number }, direct: () => boolean): FileTap => {
  const size = Number(stat.size)
  let reserved = 0 // the end of the ranges reserved so far
  let closed = false
  let broken = false
  let fed = 0
  let digest: { readonly digest: Digest.Digest; readonly scope: Scope.Closeable } | undefined
  // The ring: shared chunks the worker hashes in place (posted by number, no copy, no transfer).
  const slotCount = Math.max(1, Math.floor(queueBytes / PIECE_BYTES))
  const free: Array<Uint8Array> = []
  let allocated = 0
  let current: { readonly slot: Uint8Array; used: number } | undefined
  let hashed: Promise<void> = Promise.resolve() // settles when every posted chunk is hashed
  let roomWaiters: Array<() => void> = []
  // Set when the reads fed the whole file: its digest, computed as soon as the last chunk was hashed.
  let completing: Promise<void> | undefined
  let early: Digest.FileDigest | undefined
  // The promise the last reserved ticket resolves when its bytes are queued: tickets copy in order.
  let lastCopied: Promise<void> = Promise.resolve()
  // Whether the last reserved ticket has queued its bytes: the next ticket's `previousState`, read live by its `fill` and `lend`.
  let lastState = { settled: true }

  const digestNow = () => {
    if (digest === undefined) {
      const scope = Effect.runSync(Scope.fork(runScope))
      digest = { digest: Effect.runSync(Scope.provide(Digest.onWorker(), scope)), scope }
    }
    return digest.digest
  }
  // Hands the current chunk to the worker; its slot is free again once hashed. Posting is
  // synchronous (`runPromise` runs until the worker is asked), so chunks are hashed in order.
  const post = () => {
    const chunk = current
    if (chunk === undefined || chunk.used === 0) return
    current = undefined
    const done = Effect.runPromise(digestNow().update(chunk.slot.subarray(0, chunk.used))).then(
      () => void ((fed += chunk.used), (stats.fed += chunk.used)),
      // The worker is gone: the reads cannot be hashed; `finish` hashes the file whole.
      () => void (broken = true)
    ).then(() => {
      free.push(chunk.slot)
      const waiting = roomWaiters
      roomWaiters = []
      for (const wake of waiting) wake()
    })
    hashed = Promise.all([hashed, done]).then(() => undefined)
  }
  const slot = (): Uint8Array | undefined =>
    free.pop() ?? (allocated < slotCount ? (allocated++, new Uint8Array(new SharedArrayBuffer(PIECE_BYTES))) : undefined)
  // Copies `bytes` into the ring, waiting for a free chunk when every one is being hashed.
  const copy = (bytes: Uint8Array): Promise<void> | undefined => {
    for (let at = 0; at < bytes.byteLength && !broken;) {
      if (current === undefined) {
        const next = slot()
        if (next === undefined) {
          stats.waits++
          return new Promise<void>((resolve) => roomWaiters.push(resolve)).then(() => copy(bytes.subarray(at)))
        }
        current = { slot: next, used: 0 }
      }
      const n = Math.min(bytes.byteLength - at, PIECE_BYTES - current.used)
      current.slot.set(bytes.subarray(at, at + n), current.used)
      current.used += n
      at += n
      if (current.used === PIECE_BYTES) post()
    }
    return undefined
  }
  const reserve = (offset: number, length: number): Ticket | undefined => {
    if (closed || broken || length <= 0 || offset > reserved || offset + length <= reserved) return undefined
    const skip = reserved - offset
    reserved = offset + length
    const previous = lastCopied
    const previousState = lastState
    const state = { settled: false }
    let settle!: () => void
    const copied = new Promise<void>((resolve) => (settle = resolve))
    lastCopied = copied
    lastState = state
    const done = () => {
      state.settled = true
      settle()
      // The reads reached the end of the file: the digest is done now, and the ring and worker go.
      if (lastCopied === copied && reserved === size && !closed) completing = complete()
    }
    return {
      fill: (bytes) => {
        const own = bytes.subarray(skip)
        // Earlier reads of this file copy first (they may complete after this one).
        const after = previousState.settled ? copy(own) : previous.then(() => copy(own))
        if (after === undefined) return void done()
        return after.then(done)
      },
      fail: () => {
        broken = true
        void previous.then(done)
      },
      lend: (bytes) => {
        // Only in order and without waiting: a slot lent while an earlier read is still in flight
        // would be held by a hash that waits for that read, which may be waiting for a slot.
        if (!previousState.settled || !(bytes.buffer instanceof SharedArrayBuffer)) return undefined
        if (broken) {
          done()
          return Promise.resolve()
        }
        // The ring's partial chunk holds earlier bytes: it goes first.
        post()
        const own = bytes.subarray(skip)
        const hashedOwn = Effect.runPromise(digestNow().update(own)).then(
          () => void ((fed += own.byteLength), (stats.fed += own.byteLength), (stats.lent += own.byteLength)),
          () => void (broken = true)
        )
        hashed = Promise.all([hashed, hashedOwn]).then(() => undefined)
        done()
        return hashedOwn
      }
    }
  }
  const release = async () => {
    free.length = 0
    const worker = digest
    digest = undefined
    if (worker !== undefined) await Effect.runPromise(Scope.close(worker.scope, Exit.void))
  }
  const complete = async (): Promise<void> => {
    closed = true
    post()
    await hashed
    if (!broken) early = { bytes: size, sha256: await Effect.runPromise(digestNow().hex) }
    await release()
  }
  const finish = Effect.gen(function* () {
    closed = true
    yield* Effect.promise(() => lastCopied)
    if (completing !== undefined) yield* Effect.promise(() => completing!)
    if (early !== undefined) return { ...early, unchanged: unchanged(file, stat), fed }
    post()
    yield* Effect.promise(() => hashed)
    const rest = broken ? 0 : reserved
    if (broken || fed === 0) {
      // Nothing usable came from the reads: the whole file, as `Digest.ofFile` hashes it.
      const whole = yield* Digest.ofFile(file)
      if (whole !== undefined) stats.reread += whole.bytes
      return whole === undefined ? undefined : { ...whole, unchanged: unchanged(file, stat), fed: 0 }
    }
    const bytes = yield* Digest.continueFile(file, digestNow(), rest)
    if (bytes === undefined) return undefined
    stats.reread += bytes - rest
    return { bytes, sha256: yield* digestNow().hex, unchanged: bytes === size && unchanged(file, stat), fed }
  }).pipe(
    // The worker goes with the tap; finishing reads are neither fed nor counted as the run's reads.
    Effect.ensuring(Effect.promise(release)),
    Effect.provideService(ReadTap, none),
    Effect.provideService(ReadCounter.ReadCounter, ReadCounter.none)
  )
  return { reserve, finish, get direct() { return direct() } }
}

const inode = (stat: fs.BigIntStats) => `${stat.dev}-${stat.ino}`
const sameVersion = (a: fs.BigIntStats, b: fs.BigIntStats) => a.size === b.size && a.mtimeNs === b.mtimeNs
const statOf = (file: string): fs.BigIntStats | undefined => {
  try {
    return fs.statSync(file, { bigint: true })
  } catch {
    return undefined
  }
}
const unchanged = (file: string, before: fs.BigIntStats) => {
  const after = statOf(file)
  return after !== undefined && inode(after) === inode(before) && sameVersion(after, before)
}
