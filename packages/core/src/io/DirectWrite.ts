/**
 * Writes around the page cache (`O_DIRECT`), for `AtomicFile`s of outputs larger than the cache could
 * keep. Through the cache each written byte is the kernel's copy into a fresh cache page (~0.7 s of
 * system CPU per GB here), then the flusher's writeback and the reclaim of the page; written
 * directly, the disk reads this process's memory.
 *
 * The file is written from its start, in order (`AtomicFile` appends). Bytes are copied into
 * page-aligned slots (`DirectRead.slots`): each full slot ({@link DirectRead.PIECE_BYTES}, aligned)
 * is written directly while the next fills; {@link Staged.flush} writes the last slot's aligned
 * part directly and its tail (under {@link DirectRead.ALIGN} bytes) through the ordinary
 * descriptor. A filesystem that refuses a direct write (`EINVAL`) gets that slot, and every later
 * one, through the ordinary descriptor: the same bytes at the same offsets.
 *
 * @since 0.3.0
 */
import * as fs from "node:fs"
import * as DirectRead from "./DirectRead.ts"

/** Direct writes in flight at most (slots being written, one more filling). @category constants */
export const SLOTS = 4

/** An output written directly. @category models */
export interface Staged {
  /** Appends `bytes` (copied: they may be reused once this settles; it waits only for a free slot). Rejects after a failed write. */
  readonly append: (bytes: Uint8Array) => Promise<void>
  /** Writes everything appended and waits for every write; rejects with the first write's error. */
  readonly flush: () => Promise<void>
  /**
   * Settles once no write is queued or in flight, whatever their outcome: a descriptor closed under
   * a queued write could be reused by another open file before the thread pool writes to it.
   */
  readonly drain: () => Promise<void>
  /** Bytes written so far through the `O_DIRECT` descriptor (the rest went through the cache). */
  readonly directBytes: () => number
}

/** Appends to the file open at `fd` (ordinary) and `directFd` (`O_DIRECT`), from offset 0. @category constructors */
export const make = (fd: number, directFd: number): Staged => {
  const slots = DirectRead.slots(SLOTS)
  let direct = true
  let failure: Error | undefined
  let current: DirectRead.Slot | undefined
  let used = 0
  let position = 0 // the file offset of current[0]
  let inFlight = 0
  let directBytes = 0
  let drained: Array<() => void> = []
  // Appends copy in call order: a later one waits for an earlier one that waits for a slot.
  let queue: Promise<void> = Promise.resolve()

  const wake = () => {
    if (inFlight === 0) {
      const done = drained
      drained = []
      for (const resume of done) resume()
    }
  }
  // Counts a write in flight; the returned callback ends it (giving `slot` back, if any).
  const started = (slot?: DirectRead.Slot) => {
    inFlight++
    return (error: Error | null) => {
      if (error !== null) failure ??= error
      if (slot !== undefined) slots.give(slot)
      inFlight--
      wake()
    }
  }
  // Writes slot[0, length) at `at`, directly while allowed, then gives the slot back if `give`.
  const writeOut = (slot: DirectRead.Slot, length: number, at: number, give: boolean) => {
    const finish = started(give ? slot : undefined)
    const bytes = slot.subarray(0, length)
    if (!direct) return writeFully(fd, bytes, at, finish)
    const step = (written: number): void => {
      if (written === length) return finish(null)
      fs.write(directFd, slot, written, length - written, at + written, (error, n) => {
        if (error !== null) {
          if (error.code !== "EINVAL") return finish(error)
          // Refused (alignment or the filesystem): this slot and every later one through the cache.
          direct = false
          return writeFully(fd, bytes, at, finish, written)
        }
        directBytes += n
        // A short direct write leaves an unaligned point: the rest through the cache.
        if ((written + n) % DirectRead.ALIGN !== 0) return writeFully(fd, bytes, at, finish, written + n)
        step(written + n)
      })
    }
    step(0)
  }
  const drain = async () => {
    await queue
    while (inFlight > 0) await new Promise<void>((resume) => drained.push(resume))
  }
  const takeSlot = (): Promise<DirectRead.Slot> => {
    const slot = slots.take()
    return slot !== undefined ? Promise.resolve(slot) : slots.freed().then(takeSlot)
  }
  const copyIn = async (bytes: Uint8Array) => {
    for (let at = 0; at < bytes.byteLength;) {
      if (failure !== undefined) throw failure
      current ??= await takeSlot()
      const n = Math.min(bytes.byteLength - at, DirectRead.PIECE_BYTES - used)
      current.set(bytes.subarray(at, at + n), used)
      used += n
      at += n
      if (used === DirectRead.PIECE_BYTES) {
        writeOut(current, used, position, true)
        position += used
        current = undefined
        used = 0
      }
    }
  }
  return {
    append: (bytes) => {
      const next = queue.then(() => copyIn(bytes))
      queue = next.catch(() => undefined)
      return next
    },
    flush: async () => {
      await queue
      if (current !== undefined && used > 0) {
        const aligned = used - (used % DirectRead.ALIGN)
        // The last slot is not given back: nothing is appended after a flush.
        if (aligned > 0) writeOut(current, aligned, position, false)
        // The last, unaligned bytes: one small write through the cache.
        if (aligned < used) writeFully(fd, current.subarray(aligned, used), position + aligned, started())
        position += used
        used = 0
      }
      await drain()
      if (failure !== undefined) throw failure
    },
    drain,
    directBytes: () => directBytes
  }
}

/**
 * Writes all of `bytes` from `offset` on at file position `at + offset` through `fd` (fs.write
 * may write fewer bytes than asked). @category utils
 */
export const writeFully = (fd: number, bytes: Uint8Array, at: number, done: (error: Error | null) => void, offset = 0): void => {
  if (offset === bytes.byteLength) return done(null)
  fs.write(fd, bytes, offset, bytes.byteLength - offset, at + offset, (error, n) => (error ? done(error) : writeFully(fd, bytes, at, done, offset + n)))
}
