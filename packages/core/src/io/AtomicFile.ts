/**
 * Writes that never leave a half-written output: bytes go to a temporary file beside the target,
 * which is fsynced and renamed over the target only when the whole write succeeded. A failure
 * or an interruption (SIGINT) removes the temporary file.
 *
 * @since 0.1.0
 */
import { Effect, Exit, Scope } from "effect"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, IoError } from "./IoError.ts"

/** An output being written. @category models */
export interface AtomicFile {
  readonly target: string
  readonly temporary: string
  /** Appends bytes. */
  readonly write: (bytes: Uint8Array) => Effect.Effect<void, IoError>
  /** Bytes written so far. */
  readonly written: () => number
  /** The sha256 of everything written so far, hex. */
  readonly digest: () => string
}

/**
 * Opens a temporary file for `target`; when the scope closes with success the file is renamed
 * into place, otherwise it is deleted. Use `commit` for the rename to happen at a chosen point.
 */
export const open = (target: string): Effect.Effect<AtomicFile & { readonly commit: Effect.Effect<void, IoError> }, IoError, Scope.Scope> =>
  Effect.gen(function* () {
    const dir = path.dirname(target)
    const temporary = path.join(dir, `.${path.basename(target)}.${randomBytes(6).toString("hex")}.partial`)
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
          try { fs.closeSync(fd) } catch { /* already closed by commit */ }
          if (Exit.isFailure(exit) || !state.committed) fs.rmSync(temporary, { force: true })
        })
    )
    const state = { committed: false, written: 0 }
    const hash = createHash("sha256")
    const write = (bytes: Uint8Array) =>
      Effect.callback<void, IoError>((resume) => {
        writeFully(fd, bytes, 0, (error) => {
          if (error) return resume(Effect.fail(new IoError({ file: target, operation: "write", detail: describe(error) })))
          hash.update(bytes)
          state.written += bytes.byteLength
          resume(Effect.void)
        })
      })
    const commit = Effect.try({
      try: () => {
        fs.fsyncSync(fd)
        fs.closeSync(fd)
        fs.renameSync(temporary, target)
        state.committed = true
      },
      catch: (cause) => new IoError({ file: target, operation: "rename into place", detail: describe(cause) })
    })
    let digest: string | undefined
    return {
      target,
      temporary,
      write,
      commit,
      written: () => state.written,
      digest: () => (digest ??= hash.digest("hex"))
    }
  })

const writeFully = (fd: number, bytes: Uint8Array, offset: number, done: (error: Error | null) => void): void => {
  if (offset === bytes.byteLength) return done(null)
  fs.write(fd, bytes, offset, bytes.byteLength - offset, null, (error, n) => (error ? done(error) : writeFully(fd, bytes, offset + n, done)))
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
