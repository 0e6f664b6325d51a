/**
 * Following a growing line file (`events.jsonl`) the way `tail -f` does: each complete line is
 * delivered once, in order, with its 0-based index; a line still being written waits for its
 * newline. `fs.watch` on the file's directory wakes it at once (the file may not exist yet), and
 * polling catches what watching misses (network file systems, some containers). The file is opened
 * with `O_NOFOLLOW` and must be a regular file: a symlinked log is never read.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as path from "node:path"

/** @category models */
export interface Tail {
  /** Reads and delivers what has been appended since the last read. */
  readonly drain: () => void
  /** Stops watching and polling; no more lines are delivered. */
  readonly stop: () => void
  /** Complete lines seen so far (delivered or skipped by `fromLine`). */
  readonly lines: () => number
}

/** Options of {@link follow}. */
export interface FollowOptions {
  /** Lines before this index are skipped (already shown to the reader). */
  readonly fromLine?: number
  /** Called with each new complete line (without its newline) and its index. */
  readonly onLine: (line: string, index: number) => void
  /** Called after each polling read, e.g. to decide the file is finished. */
  readonly onPoll?: () => void
  /** Polling interval in milliseconds (default 500). */
  readonly pollMs?: number
}

const NEWLINE = 0x0a

/** Follows `file`. Reads what is already there before returning. */
export const follow = (file: string, options: FollowOptions): Tail => {
  const fromLine = options.fromLine ?? 0
  let offset = 0
  let index = 0
  let pending: Buffer = Buffer.alloc(0)
  let stopped = false
  const chunk = Buffer.alloc(64 * 1024)

  const drain = () => {
    if (stopped) return
    let fd: number
    try {
      // Never through a symlink: the dashboard serves only what is inside the runs folder.
      fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK)
    } catch {
      return // not created yet (or a symlink, which is never read)
    }
    try {
      if (!fs.fstatSync(fd).isFile()) return
      for (;;) {
        const n = fs.readSync(fd, chunk, 0, chunk.length, offset)
        if (n <= 0) break
        offset += n
        pending = pending.length === 0 ? Buffer.from(chunk.subarray(0, n)) : Buffer.concat([pending, chunk.subarray(0, n)])
        let start = 0
        for (let nl = pending.indexOf(NEWLINE, start); nl >= 0 && !stopped; nl = pending.indexOf(NEWLINE, start)) {
          // Split on bytes, decode whole lines: a multi-byte character never straddles two reads.
          const line = pending.subarray(start, nl).toString("utf8")
          start = nl + 1
          if (index >= fromLine) options.onLine(line, index)
          index++
        }
        pending = pending.subarray(start)
      }
    } finally {
      fs.closeSync(fd)
    }
  }

  let watcher: fs.FSWatcher | undefined
  try {
    watcher = fs.watch(path.dirname(file), (_event, name) => {
      if (name === null || name === path.basename(file)) drain()
    })
    watcher.on("error", () => watcher?.close())
    watcher.unref()
  } catch {
    watcher = undefined // polling alone
  }
  const timer = setInterval(() => {
    drain()
    if (!stopped) options.onPoll?.()
  }, options.pollMs ?? 500)
  timer.unref()
  drain()
  return {
    drain,
    stop: () => {
      stopped = true
      clearInterval(timer)
      watcher?.close()
    },
    lines: () => index
  }
}
