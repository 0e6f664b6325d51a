/**
 * Reads around the page cache (`O_DIRECT`). A merge of checkpoints larger than the memory reads each
 * byte once: through the page cache, every read is the kernel's copy out of freshly filled cache
 * pages (on this machine's virtual disk ~1 s of system CPU per GB read cold, against ~0.1 s with
 * `O_DIRECT`, `dd` of the same 4 GB), and then its reclaim of them. Read directly, the disk writes
 * into this process's memory and the cache is left alone.
 *
 * `O_DIRECT` wants the file offset, the length and the memory address aligned (the device's logical
 * block, 512 bytes here; {@link ALIGN} covers the usual 4 KiB too). A tensor's bytes start anywhere,
 * so a read of `[offset, offset + length)` reads the aligned range around it into a {@link Slot},
 * a WebAssembly memory of its own (page-aligned: `ArrayBuffer`s come from malloc and are not), and
 * the caller copies its part out. The slots are shared memory, so the digest worker can hash a
 * slot's bytes where they are (`ReadTap`'s `lend`) and give it back after.
 *
 * Where the filesystem refuses (`EINVAL` at open or at the first read: some filesystems, some FUSE
 * mounts) the caller reads as before, through the cache.
 *
 * @since 0.3.0
 */
import * as fs from "node:fs"
import * as os from "node:os"

/** Alignment of offsets, lengths and addresses of direct reads. @category constants */
export const ALIGN = 4096
/** The most bytes one piece of a direct read serves (a read is cut into pieces of this size). @category constants */
export const PIECE_BYTES = 4 * 1024 * 1024
/** Slots per open file: reads in flight plus pieces lent to the hash (a merge keeps ~4 reads of a file in flight). @category constants */
export const SLOTS = 8
/** Files smaller than this are read through the cache (headers, configs, small checkpoints). @category constants */
export const MIN_FILE_BYTES = 64 * 1024 * 1024
/** Reads shorter than this are read through the cache (a header, a norm vector). @category constants */
export const MIN_READ_BYTES = 256 * 1024

const WASM_PAGE = 65536
// A piece of PIECE_BYTES at any offset spans at most PIECE_BYTES + 2 × ALIGN aligned bytes.
const SLOT_PAGES = Math.ceil((PIECE_BYTES + 2 * ALIGN) / WASM_PAGE)

/** Page-aligned shared memory one piece is read into. @category models */
export type Slot = Uint8Array<SharedArrayBuffer>

/**
 * The direct reads policy, from `CRUCIBLE_DIRECT_READS`: `"on"` (`1`) reads every large file
 * directly, `"off"` (`0`) none, otherwise `"auto"`: the files whose reads a `ReadTap` wants
 * hashed when they exceed what the page cache could hold (a first run over checkpoints larger than
 * the memory; see `ReadTap.make`). The page cache cannot be asked whether a file is in it (no
 * `mincore` in Node), so a run whose inputs fit the memory keeps reading through it: they may be
 * cached, and a direct read would go to the disk for them. @category models
 */
export type Policy = "on" | "off" | "auto"

/**
 * Whether `bytes` of files read or written by one run exceed what the page cache could keep (half
 * the memory): through the cache they would evict one another, and everything else, before anyone
 * read them from there again. @category predicates
 */
export const exceedsCache = (bytes: number): boolean => bytes > os.totalmem() / 2

/** {@link Policy} from the environment. @category constructors */
export const policy = (env: NodeJS.ProcessEnv = process.env): Policy => {
  const value = (env["CRUCIBLE_DIRECT_READS"] ?? "").trim().toLowerCase()
  return value === "1" || value === "on" ? "on" : value === "0" || value === "off" ? "off" : "auto"
}

/**
 * Whether a file of `size` bytes goes around the cache under `current`: never under
 * {@link MIN_FILE_BYTES}; otherwise always when `"on"`, never when `"off"`, and when `"auto"` as
 * `autoSaysDirect` says (a `ReadTap` wanting the file hashed, an output larger than the cache).
 * Read and write sides decide alike. @category predicates
 */
export const wanted = (size: number, autoSaysDirect: boolean, current: Policy = policy()): boolean =>
  size >= MIN_FILE_BYTES && (current === "on" || (current === "auto" && autoSaysDirect))

/**
 * A second descriptor of `path` opened `O_DIRECT` (read-only, or write-only with `write`), or
 * undefined where it cannot be (no `O_DIRECT` on this platform, a filesystem that refuses it).
 *
 * @category constructors
 */
export const open = (path: string, mode: "read" | "write" = "read"): number | undefined => {
  if (fs.constants.O_DIRECT === undefined) return undefined
  try {
    return fs.openSync(path, (mode === "read" ? fs.constants.O_RDONLY : fs.constants.O_WRONLY) | fs.constants.O_DIRECT)
  } catch {
    return undefined
  }
}

/** At most {@link SLOTS} slots, made when first needed. @category models */
export interface Slots {
  /** A free slot, or undefined when all are out. */
  readonly take: () => Slot | undefined
  readonly give: (slot: Slot) => void
  /** Settles at the next `give`. */
  readonly freed: () => Promise<void>
}

/** A fresh set of slots. @category constructors */
export const slots = (count = SLOTS): Slots => {
  const free: Array<Slot> = []
  let made = 0
  let waiters: Array<() => void> = []
  return {
    take: () => free.pop() ?? (made < count ? (made++, new Uint8Array(new WebAssembly.Memory({ initial: SLOT_PAGES, maximum: SLOT_PAGES, shared: true }).buffer as unknown as SharedArrayBuffer)) : undefined),
    give: (slot) => {
      free.push(slot)
      const waiting = waiters
      waiters = []
      for (const wake of waiting) wake()
    },
    freed: () => new Promise<void>((resolve) => waiters.push(resolve))
  }
}

/** The aligned range around `[offset, offset + length)`: where to read and where the wanted bytes start in it. @category models */
export interface Aligned {
  readonly start: number
  readonly length: number
  readonly skip: number
}

/** @category constructors */
export const aligned = (offset: number, length: number): Aligned => {
  const start = Math.floor(offset / ALIGN) * ALIGN
  const end = Math.ceil((offset + length) / ALIGN) * ALIGN
  return { start, length: end - start, skip: offset - start }
}

/**
 * Reads the aligned range around `[offset, offset + length)` of the direct descriptor `fd` into
 * `slot`; `done` gets the wanted bytes (a view of the slot), or an error (`EINVAL`: the filesystem
 * refuses this read; the file shorter than asked). Reads past the end of the file stop there.
 */
export const readPiece = (fd: number, slot: Slot, offset: number, length: number, done: (error: NodeJS.ErrnoException | null, bytes?: Slot) => void): void => {
  const range = aligned(offset, length)
  const need = range.skip + length
  const step = (filled: number): void => {
    if (filled >= need) return done(null, slot.subarray(range.skip, need))
    fs.read(fd, slot, filled, range.length - filled, range.start + filled, (error, n) => {
      if (error) return done(error)
      // A short read that is not at an aligned point cannot go on directly (nor is it the end we need).
      if (n === 0 || (filled + n < need && (filled + n) % ALIGN !== 0)) return done(Object.assign(new Error("unexpected end of file"), { code: "ESHORT" }))
      step(filled + n)
    })
  }
  step(0)
}
