/**
 * Positional reads of a file: a model's tensors are read by byte range, never as a whole-file
 * buffer, so a reader's memory is bounded by the tensor it reads.
 *
 * Large reads of a large file go around the page cache (`DirectRead`: `O_DIRECT`, piece by piece
 * through page-aligned slots) when `CRUCIBLE_DIRECT_READS` says so, or, by default, when the
 * file's `ReadTap` does (a first run over inputs larger than half the memory). A tapped piece's
 * slot is lent to the hash (`Ticket.lend`) rather than copied into its ring. The bytes, the counts
 * and the digests are the same either way; a filesystem that refuses `O_DIRECT` is read through
 * the cache.
 *
 * @since 0.1.0
 */
import { Effect, Scope } from "effect"
import * as fs from "node:fs"
import * as DirectRead from "./DirectRead.ts"
import { describe, FormatError, IoError } from "./IoError.ts"
import { ReadCounter } from "./ReadCounter.ts"
import { ReadTap, type Tap, type Ticket } from "./ReadTap.ts"

/** An open file read by absolute byte offsets. @category models */
export interface ByteSource {
  readonly path: string
  readonly size: number
  /** Reads exactly `length` bytes at `offset`; fails with FormatError if the file is shorter. */
  readonly read: (offset: number, length: number) => Effect.Effect<Uint8Array<ArrayBuffer>, IoError | FormatError>
  /**
   * Reads exactly `target.byteLength` bytes at `offset` into `target` (memory the caller reuses,
   * e.g. a WebAssembly arena): no fresh buffer per read. `target` must not be moved, resized or
   * read until the effect completes.
   */
  readonly readInto: (offset: number, target: Uint8Array) => Effect.Effect<void, IoError | FormatError>
}

/**
 * Opens `path` for the lifetime of the current scope. Its reads are reported to the
 * `ReadCounter` in effect now, whichever fiber makes them later, and fed to the `ReadTap` in
 * effect now when it wants the file's digest. @category constructors
 */
export const open = (path: string, format = "file"): Effect.Effect<ByteSource, IoError, Scope.Scope> =>
  Effect.gen(function* () {
    const counter = yield* ReadCounter
    const taps = yield* ReadTap
    const policy = DirectRead.policy()
    return yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          const fd = fs.openSync(path, "r")
          const size = fs.fstatSync(fd).size
          const tap = taps.forFile(fd)
          return { fd, size, tap, direct: DirectRead.wanted(size, tap?.direct === true, policy) ? DirectRead.open(path) : undefined }
        },
        catch: (cause) => new IoError({ file: path, operation: "open", detail: describe(cause) })
      }),
      ({ fd, direct }) => Effect.sync(() => {
        fs.closeSync(fd)
        if (direct !== undefined) fs.closeSync(direct)
      })
    ).pipe(Effect.map(({ fd, size, tap, direct }) => fromDescriptor(path, fd, size, format, counter, tap, direct)))
  })

const fromDescriptor = (path: string, fd: number, size: number, format: string, counter: ReadCounter, tap: Tap | undefined, direct: number | undefined): ByteSource => {
  const slots = direct === undefined ? undefined : DirectRead.slots()
  // Cleared by the first read the filesystem refuses (EINVAL): the rest go through the cache.
  let directOk = direct !== undefined
  const count = (n: number) => counter.add(path, n)
  const beyondEnd = (offset: number, length: number) =>
    new FormatError({ file: path, format, detail: `read of ${length} bytes at offset ${offset} is beyond the end of the file (${size} bytes)` })
  const failed = (error: Error) => Effect.fail(new IoError({ file: path, operation: "read", detail: describe(error) }))
  // A direct read: piece by piece, each read into a slot, copied into `target`, and lent to the
  // hash (or given back). With every slot out (being read, or lent to a hash that is behind) the
  // read waits for one: the hash's back-pressure, as its ring's. Slots are held only by reads in
  // flight and by hashes of bytes already posted in order, so one always comes back. A piece the
  // filesystem refuses is read through the cache.
  const directInto = (offset: number, target: Uint8Array, done: (error: Error | null) => void) => {
    const pieces: Array<{ readonly at: number; readonly length: number; readonly ticket: Ticket | undefined }> = []
    // Reserved when issued, in order, one ticket per piece.
    for (let at = 0; at < target.byteLength; at += DirectRead.PIECE_BYTES) {
      const length = Math.min(DirectRead.PIECE_BYTES, target.byteLength - at)
      pieces.push({ at, length, ticket: tap?.reserve(offset + at, length) })
    }
    // Copies into the hash's ring the read waits for before `target` may be reused.
    const copies: Array<Promise<void>> = []
    // Hands a piece's bytes (in `target`) to its ticket's ring, if tapped.
    const fill = (k: number) => {
      const piece = pieces[k]!
      const copied = piece.ticket?.fill(target.subarray(piece.at, piece.at + piece.length))
      if (copied !== undefined) copies.push(copied)
    }
    const fail = (k: number, error: Error) => {
      for (const p of pieces.slice(k)) p.ticket?.fail()
      done(error)
    }
    const buffered = (k: number) => {
      const piece = pieces[k]!
      const part = target.subarray(piece.at, piece.at + piece.length)
      readFully(fd, part, offset + piece.at, count, (error) => {
        if (error) return fail(k, error)
        fill(k)
        next(k + 1)
      })
    }
    const next = (k: number): void => {
      if (k === pieces.length) return void Promise.all(copies).then(() => done(null))
      const piece = pieces[k]!
      if (!directOk) return buffered(k)
      const slot = slots!.take()
      if (slot === undefined) return void slots!.freed().then(() => next(k))
      DirectRead.readPiece(direct!, slot, offset + piece.at, piece.length, (error, bytes) => {
        if (error) {
          slots!.give(slot)
          if (error.code !== "EINVAL") return fail(k, error)
          directOk = false
          return buffered(k)
        }
        target.set(bytes!, piece.at)
        counter.add(path, piece.length, true)
        const lent = piece.ticket?.lend(bytes!)
        if (lent !== undefined) void lent.then(() => slots!.give(slot))
        else {
          slots!.give(slot)
          fill(k)
        }
        next(k + 1)
      })
    }
    next(0)
  }
  const into = (offset: number, target: Uint8Array) =>
    Effect.callback<void, IoError>((resume) => {
      if (directOk && target.byteLength >= DirectRead.MIN_READ_BYTES) {
        return directInto(offset, target, (error) => resume(error ? failed(error) : Effect.void))
      }
      // Reserved when issued, so concurrent reads of consecutive ranges are all fed, in order.
      const ticket = tap?.reserve(offset, target.byteLength)
      readFully(fd, target, offset, count, (error) => {
        if (error) {
          ticket?.fail()
          return resume(failed(error))
        }
        // The bytes are copied for the hash before the caller may reuse `target` (it waits only while the hash's queue is full).
        const copied = ticket?.fill(target)
        if (copied === undefined) resume(Effect.void)
        else void copied.then(() => resume(Effect.void))
      })
    })
  const outside = (offset: number, length: number) => offset < 0 || length < 0 || offset + length > size
  return {
    path,
    size,
    read: (offset, length) => {
      if (outside(offset, length)) return Effect.fail(beyondEnd(offset, length))
      // Not zero-filled: readFully fills every byte or the read fails.
      const buffer = new Uint8Array(Buffer.allocUnsafeSlow(length).buffer, 0, length)
      return Effect.as(into(offset, buffer), buffer)
    },
    readInto: (offset, target) => (outside(offset, target.byteLength) ? Effect.fail(beyondEnd(offset, target.byteLength)) : into(offset, target))
  }
}

// fs.read may return fewer bytes than asked (large reads are capped at 2 GiB): loop until done.
// `counted` hears of every byte the file gave, so a read cut short by an error still counts.
const readFully = (fd: number, buffer: Uint8Array, position: number, counted: (bytes: number) => void, done: (error: Error | null) => void, filled = 0): void => {
  if (filled === buffer.byteLength) return done(null)
  const length = Math.min(buffer.byteLength - filled, 1 << 30)
  fs.read(fd, buffer, filled, length, position + filled, (error, bytesRead) => {
    if (error) return done(error)
    if (bytesRead === 0) return done(new Error("unexpected end of file"))
    counted(bytesRead)
    readFully(fd, buffer, position, counted, done, filled + bytesRead)
  })
}

/** A byte source over memory, for tests and for formats unpacked in memory. @category constructors */
export const fromBytes = (path: string, bytes: Uint8Array, format = "file"): ByteSource => {
  const check = (offset: number, length: number) =>
    offset < 0 || length < 0 || offset + length > bytes.byteLength
      ? Effect.fail(new FormatError({ file: path, format, detail: `read of ${length} bytes at offset ${offset} is beyond the end (${bytes.byteLength} bytes)` }))
      : Effect.void
  return {
    path,
    size: bytes.byteLength,
    read: (offset, length) => Effect.as(check(offset, length), bytes.slice(offset, offset + length)),
    readInto: (offset, target) => Effect.andThen(check(offset, target.byteLength), Effect.sync(() => target.set(bytes.subarray(offset, offset + target.byteLength))))
  }
}
