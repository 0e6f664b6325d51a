/**
 * The running sha256 of an output being written (the manifest records every output's digest).
 * Hashing costs about as much as writing (≈ 2.3 GB/s here), so for large outputs it runs on a
 * worker thread, beside the writes and the computation that produces the bytes, instead of on
 * the thread that produces them.
 *
 * - {@link inThread}: `node:crypto` on this thread; for small files, where a thread costs more.
 * - {@link onWorker}: the same hash on a worker thread. Bytes in a `SharedArrayBuffer` are
 *   hashed where they are (the writer's chunk buffers are shared, see `safetensors/Safetensors.ts`);
 *   other bytes are copied once to the worker. `update` completes when the caller may reuse the
 *   bytes: shared ones once the worker has hashed them, copied ones at once.
 *
 * - {@link ofFile}: the digest of a whole file, streamed through {@link onWorker} (the run's
 *   input checkpoints, hashed for the manifest while the stages run).
 *
 * The worker is a few lines of code evaluated from a string (no module of its own to find), so
 * it starts the same from the sources and from the CLI bundle.
 *
 * @since 0.1.0
 */
import { Effect, Fiber, type Scope } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import { Worker } from "node:worker_threads"
import * as ByteSource from "./ByteSource.ts"

/** A sha256 being computed over bytes given in order. @category models */
export interface Digest {
  /** Adds `bytes`; completes when the caller may reuse them (hashed, or copied for the hash). */
  readonly update: (bytes: Uint8Array) => Effect.Effect<void>
  /** The hex digest of everything added; no update may follow. */
  readonly hex: Effect.Effect<string>
}

/** Outputs at least this large are hashed on a worker thread. @category constants */
export const WORKER_MIN_BYTES = 32 * 1024 * 1024

/** A digest computed on the calling thread. @category constructors */
export const inThread = (): Digest => {
  const hash = createHash("sha256")
  let hex: string | undefined
  return {
    update: (bytes) => Effect.sync(() => void hash.update(bytes)),
    hex: Effect.sync(() => (hex ??= hash.digest("hex")))
  }
}

// Shared buffers are posted once ({ share, buffer }) and named by number after that: posting a
// SharedArrayBuffer costs ~0.4 ms a message, posting numbers next to nothing.
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads")
const hash = require("node:crypto").createHash("sha256")
const shared = new Map()
parentPort.on("message", (m) => {
  if (m.share !== undefined) shared.set(m.share, m.buffer)
  if (m.bytes !== undefined) hash.update(m.bytes)
  else if (m.id !== undefined) hash.update(new Uint8Array(shared.get(m.id), m.offset, m.length))
  else return parentPort.postMessage({ seq: m.seq, hex: hash.digest("hex") })
  parentPort.postMessage({ seq: m.seq })
})
`

/**
 * A digest computed on a worker thread that lives as long as the scope. If the thread cannot
 * start, the digest is computed on this thread instead (same result).
 *
 * @category constructors
 */
export const onWorker = (): Effect.Effect<Digest, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => {
        try {
          // Not unref'd: while a digest is awaited the worker may be all that keeps the process
          // alive; the scope's release terminates it.
          return new Worker(WORKER_SOURCE, { eval: true })
        } catch {
          return undefined
        }
      }),
      (worker) => Effect.promise(async () => void (await worker?.terminate()))
    ),
    (worker) => (worker === undefined ? inThread() : viaWorker(worker))
  )

const viaWorker = (worker: Worker): Digest => {
  const waiting = new Map<number, (reply: { readonly hex?: string }) => void>()
  let seq = 0
  let failure: Error | undefined
  const fail = (error: Error) => {
    failure = error
    for (const resume of waiting.values()) resume({})
    waiting.clear()
  }
  worker.on("message", (reply: { readonly seq: number; readonly hex?: string }) => {
    const resume = waiting.get(reply.seq)
    waiting.delete(reply.seq)
    resume?.(reply)
  })
  worker.on("error", fail)
  worker.on("exit", () => fail(new Error("the sha256 worker exited")))
  const ids = new WeakMap<SharedArrayBuffer, number>()
  const ask = (message: Record<string, unknown>, transfer: ReadonlyArray<ArrayBuffer>) =>
    Effect.callback<{ readonly hex?: string }>((resume) => {
      if (failure !== undefined) return resume(Effect.die(failure))
      const id = seq++
      waiting.set(id, (reply) => resume(failure !== undefined ? Effect.die(failure) : Effect.succeed(reply)))
      worker.postMessage({ ...message, seq: id }, transfer as Array<ArrayBuffer>)
    })
  return {
    update: (bytes) => {
      if (bytes.byteLength === 0) return Effect.void
      if (bytes.buffer instanceof SharedArrayBuffer) {
        const known = ids.get(bytes.buffer)
        const id = known ?? ids.set(bytes.buffer, seq).get(bytes.buffer)!
        const share = known === undefined ? { share: id, buffer: bytes.buffer } : {}
        return Effect.asVoid(ask({ ...share, id, offset: bytes.byteOffset, length: bytes.byteLength }, []))
      }
      // A copy of just the view (posting the view would clone its whole buffer), handed over. The
      // caller's bytes are free at once: not waiting for the worker's reply spares the writer's
      // first write (the header) the worker's start-up, ~0.1 s before a save's first chunk.
      return Effect.suspend(() => {
        if (failure !== undefined) return Effect.die(failure)
        const copy = bytes.slice()
        worker.postMessage({ bytes: copy, seq: seq++ }, [copy.buffer])
        return Effect.void
      })
    },
    hex: Effect.map(ask({}, []), (reply) => reply.hex!)
  }
}

/** The size and sha256 of a whole file. @category models */
export interface FileDigest {
  readonly bytes: number
  readonly sha256: string
}

/** Bytes of the file read per step by {@link ofFile}. */
const FILE_CHUNK = 4 * 1024 * 1024

/**
 * The size and digest of the file at `path`: read into two reused shared buffers in turn (chunk
 * k+1 is read while chunk k is hashed) and hashed on a worker thread ({@link onWorker}), so the
 * calling thread only dispatches; undefined when the file cannot be read. A file under
 * {@link WORKER_MIN_BYTES} is hashed on this thread: a worker's start costs ~70 ms of CPU, more
 * than hashing 100 MB (a run's config.json and shard index each started one).
 *
 * @category constructors
 */
export const ofFile = (path: string): Effect.Effect<FileDigest | undefined> =>
  Effect.scoped(
    Effect.gen(function* () {
      const size = yield* Effect.sync(() => {
        try {
          return fs.statSync(path).size
        } catch {
          return undefined
        }
      })
      if (size === undefined) return undefined
      const digest = size >= WORKER_MIN_BYTES ? yield* onWorker() : inThread()
      const bytes = yield* continueFile(path, digest, 0)
      return bytes === undefined ? undefined : { bytes, sha256: yield* digest.hex }
    })
  )

/**
 * Adds the bytes of the file at `path` from `from` to its end to `digest`, read as {@link ofFile}
 * reads them (two shared buffers in turn); the file's size, or undefined when it cannot be read.
 * `ReadTap.finish` ends a hash that reads of the file began with it.
 *
 * @category constructors
 */
export const continueFile = (path: string, digest: Digest, from: number): Effect.Effect<number | undefined> =>
  Effect.scoped(
    Effect.gen(function* () {
      const source = yield* ByteSource.open(path)
      const buffers = [0, 1].map(() => new Uint8Array(new SharedArrayBuffer(Math.max(1, Math.min(FILE_CHUNK, source.size - from)))))
      let hashing: Fiber.Fiber<void> | undefined
      for (let offset = from, k = 0; offset < source.size; offset += FILE_CHUNK, k++) {
        const chunk = buffers[k & 1]!.subarray(0, Math.min(FILE_CHUNK, source.size - offset))
        yield* source.readInto(offset, chunk)
        if (hashing !== undefined) yield* Fiber.join(hashing)
        hashing = yield* Effect.forkChild(digest.update(chunk), { startImmediately: true })
      }
      if (hashing !== undefined) yield* Fiber.join(hashing)
      return source.size
    })
  ).pipe(Effect.catch(() => Effect.succeed(undefined)))
