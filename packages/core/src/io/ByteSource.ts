/**
 * Positional reads of a file: a model's tensors are read by byte range, never as a whole-file
 * buffer, so a reader's memory is bounded by the tensor it reads.
 *
 * @since 0.1.0
 */
import { Effect, Scope } from "effect"
import * as fs from "node:fs"
import { describe, FormatError, IoError } from "./IoError.ts"
import { ReadCounter } from "./ReadCounter.ts"
import { ReadTap, type Tap } from "./ReadTap.ts"

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
    return yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          const fd = fs.openSync(path, "r")
          return { fd, size: fs.fstatSync(fd).size, tap: taps.forFile(fd) }
        },
        catch: (cause) => new IoError({ file: path, operation: "open", detail: describe(cause) })
      }),
      ({ fd }) => Effect.sync(() => fs.closeSync(fd))
    ).pipe(Effect.map(({ fd, size, tap }) => fromDescriptor(path, fd, size, format, counter, tap)))
  })

const fromDescriptor = (path: string, fd: number, size: number, format: string, counter: ReadCounter, tap: Tap | undefined): ByteSource => {
  const beyondEnd = (offset: number, length: number) =>
    new FormatError({ file: path, format, detail: `read of ${length} bytes at offset ${offset} is beyond the end of the file (${size} bytes)` })
  const into = (offset: number, target: Uint8Array) =>
    Effect.callback<void, IoError>((resume) => {
      // Reserved when issued, so concurrent reads of consecutive ranges are all fed, in order.
      const ticket = tap?.reserve(offset, target.byteLength)
      readFully(fd, target, offset, (n) => counter.add(path, n), (error) => {
        if (error) {
          ticket?.fail()
          return resume(Effect.fail(new IoError({ file: path, operation: "read", detail: describe(error) })))
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
