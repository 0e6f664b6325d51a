/**
 * The disk's own bandwidth, measured in the bench's run on the bench's folder, and the page-cache
 * controls the bench needs: evicting a file's pages (so the next read comes from the disk) and
 * reading files in (so it comes from memory).
 *
 * Eviction is `dd iflag=nocache count=0`: posix_fadvise(POSIX_FADV_DONTNEED) over the whole file,
 * which any reader may ask for and which drops the file's clean pages. It needs no root, unlike
 * `/proc/sys/vm/drop_caches` (used too, where writable, for the rest of the cache).
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Random from "../../packages/strategies/src/backend/Random.ts"

/** Bandwidths in bytes per second, and how they were measured. */
export interface DiskBandwidth {
  readonly readBytesPerSecond: number
  readonly writeBytesPerSecond: number
  readonly bytes: number
  readonly readMethod: string
  readonly writeMethod: string
}

const BLOCK = 64 * 2 ** 20

const dd = (args: ReadonlyArray<string>) => spawnSync("dd", [...args, "status=none"], { encoding: "utf8" })

/** Drops `files`' pages from the page cache (fadvise DONTNEED through dd); returns whether dd could. */
export const evict = (files: ReadonlyArray<string>): boolean =>
  files.every((f) => dd([`if=${f}`, "iflag=nocache", "count=0"]).status === 0)

/** Whether this process may drop the whole page cache (root, or a writable /proc/sys/vm/drop_caches). */
export const canDropCaches = (): boolean => {
  try {
    fs.accessSync("/proc/sys/vm/drop_caches", fs.constants.W_OK)
    return true
  } catch {
    return false
  }
}

/** `sync` and drop the whole page cache where allowed; returns whether it was dropped. */
export const dropCaches = (): boolean => {
  if (!canDropCaches()) return false
  spawnSync("sync")
  try {
    fs.writeFileSync("/proc/sys/vm/drop_caches", "3")
    return true
  } catch {
    return false
  }
}

// statfs's f_type of tmpfs (linux/magic.h).
const TMPFS_MAGIC = 0x01021994

/** Whether `dir` is on tmpfs (RAM: a write there costs a copy, an fsync nothing). */
export const isTmpfs = (dir: string): boolean => fs.statfsSync(dir).type === TMPFS_MAGIC

/** Reads `files` once, so that later reads find them in the page cache. */
export const warm = (files: ReadonlyArray<string>): void => {
  for (const f of files) dd([`if=${f}`, "of=/dev/null", "bs=16M"])
}

/**
 * Writes `bytes` of incompressible data into `dir` and fdatasyncs it (write bandwidth: bytes over
 * the time until the data is on the disk), then reads it back with O_DIRECT (dd iflag=direct), or,
 * where the filesystem refuses O_DIRECT, after evicting it from the page cache. Deletes the file.
 */
export const measure = (dir: string, bytes = 2 * 2 ** 30): DiskBandwidth => {
  const file = path.join(dir, `.bigmerge-disk-${process.pid}.bin`)
  // A seeded random stream (backend/Random.ts): the disk (or a compressing layer under it) sees no pattern.
  const random = Random.make(0x9e3779b9)
  const block = Uint32Array.from({ length: BLOCK / 4 }, () => random.uint32())
  const blocks = Math.max(1, Math.round(bytes / BLOCK))
  const total = blocks * BLOCK
  try {
    const fd = fs.openSync(file, "w")
    const t0 = performance.now()
    try {
      for (let b = 0; b < blocks; b++) {
        block[0] = b // every block differs
        fs.writeSync(fd, block, 0, BLOCK, b * BLOCK)
      }
      fs.fdatasyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
    const writeSeconds = (performance.now() - t0) / 1000
    let readMethod = "dd bs=16M iflag=direct (O_DIRECT: no page cache)"
    let t1 = performance.now()
    let r = dd([`if=${file}`, "of=/dev/null", "bs=16M", "iflag=direct"])
    if (r.status !== 0) {
      readMethod = "dd bs=16M after fadvise DONTNEED (O_DIRECT refused here)"
      evict([file])
      t1 = performance.now()
      r = dd([`if=${file}`, "of=/dev/null", "bs=16M"])
      if (r.status !== 0) throw new Error(`dd could not read ${file} back: ${r.stderr}`)
    }
    const readSeconds = (performance.now() - t1) / 1000
    return {
      readBytesPerSecond: total / readSeconds,
      writeBytesPerSecond: total / writeSeconds,
      bytes: total,
      readMethod,
      writeMethod: "node writeSync of 64 MiB blocks + fdatasync, timed to the end of the fdatasync"
    }
  } finally {
    fs.rmSync(file, { force: true })
  }
}

/** The time a merge's I/O alone would take: reads then writes (serial), or both at once (overlapped). */
export const bound = (bw: DiskBandwidth, readBytes: number, writtenBytes: number) => {
  const read = readBytes / bw.readBytesPerSecond
  const write = writtenBytes / bw.writeBytesPerSecond
  return { serialSeconds: read + write, overlappedSeconds: Math.max(read, write) }
}
