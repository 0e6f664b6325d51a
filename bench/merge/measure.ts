/**
 * Measuring a child process (wall time, CPU time, peak RSS) and this machine's memcpy
 * bandwidth, for the end-to-end merge bench.
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

/** What one child process cost. */
export interface ChildRun {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  /** Wall time from spawn to exit, seconds (start-up included). */
  readonly wallSeconds: number
  readonly userSeconds: number
  readonly systemSeconds: number
  /** Peak resident set size (getrusage maxrss of the child), bytes. */
  readonly peakRssBytes: number
  /** Date.now() just before the spawn, to place the child's own timestamps. */
  readonly spawnedAt: number
}

const TIME = "/usr/bin/time"

/** Whether GNU time (Debian's `time` package) is installed: it reports a child's peak RSS. */
export const hasGnuTime = (): boolean => fs.existsSync(TIME)

/**
 * Runs `command args` to completion under GNU time (`-f "%e %U %S %M"`, written to a file so the
 * child's own stderr stays its own). Without GNU time, CPU times and peak RSS are NaN.
 */
export const runChild = (command: string, args: ReadonlyArray<string>, options: { readonly cwd: string; readonly env?: NodeJS.ProcessEnv }): ChildRun => {
  const report = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "merge-bench-time-")), "time.txt")
  const timed = hasGnuTime()
  const spawnedAt = Date.now()
  const t0 = performance.now()
  const r = timed
    ? spawnSync(TIME, ["-o", report, "-f", "%e %U %S %M", command, ...args], { cwd: options.cwd, env: options.env ?? process.env, encoding: "utf8", maxBuffer: 1 << 26 })
    : spawnSync(command, args, { cwd: options.cwd, env: options.env ?? process.env, encoding: "utf8", maxBuffer: 1 << 26 })
  const wallSeconds = (performance.now() - t0) / 1000
  let userSeconds = Number.NaN, systemSeconds = Number.NaN, peakRssBytes = Number.NaN
  if (timed && fs.existsSync(report)) {
    // The last line holds the figures ("Command exited with non-zero status" may precede it).
    const fields = fs.readFileSync(report, "utf8").trim().split("\n").at(-1)!.split(" ").map(Number)
    userSeconds = fields[1]!
    systemSeconds = fields[2]!
    peakRssBytes = fields[3]! * 1024
  }
  fs.rmSync(path.dirname(report), { recursive: true, force: true })
  return { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "", wallSeconds, userSeconds, systemSeconds, peakRssBytes, spawnedAt }
}

/**
 * Single-thread memcpy bandwidth in GB/s, counting bytes read plus bytes written: the best of
 * `repeats` copies of `bytes` between two arrays (TypedArray.set, libc memcpy underneath), after
 * one copy that faults the pages in.
 */
export const memcpyGBps = (bytes = 256 * 2 ** 20, repeats = 5): number => {
  const from = new Uint8Array(bytes).fill(1)
  const to = new Uint8Array(bytes)
  to.set(from)
  let best = Infinity
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now()
    to.set(from)
    best = Math.min(best, (performance.now() - t0) / 1000)
  }
  return (2 * bytes) / best / 1e9
}

/** The median of `xs` (the mean of the middle two for an even count). */
export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}
