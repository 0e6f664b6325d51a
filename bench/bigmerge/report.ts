/**
 * Pure formatting of the bench's figures: per-tool summaries of the timed runs, the table, and the
 * notes under it (how the cache was handled, how the outputs agree, issue 15's targets).
 */
import { median } from "../merge/measure.ts"
import type { Difference } from "./compare.ts"
import type { DiskBandwidth } from "./disk.ts"
import type { ToolRun } from "./tools.ts"

const GB = 1e9, MiB = 2 ** 20

/** The disk bound of one merge, seconds. */
export interface Bound {
  readonly serialSeconds: number
  readonly overlappedSeconds: number
}

/** One tool's figures over the rounds of one method. */
export interface Summary {
  readonly wallSeconds: { readonly median: number; readonly best: number; readonly all: ReadonlyArray<number> }
  readonly startupSeconds: number
  readonly mergeSeconds: number
  /** The median run's CPU: its user + system (so the split below sums to it). */
  readonly cpuSeconds: number
  /** The median run's CPU split: user and system (kernel: the copies of buffered reads and writes, page-cache upkeep). */
  readonly userSeconds: number
  readonly systemSeconds: number
  readonly peakRssBytes: number
  /** (bytes read + bytes written) / median wall, GB/s. */
  readonly gbps: number
  /** Median wall over the disk bound, both forms. */
  readonly overBound: { readonly serial: number; readonly overlapped: number }
}

/** What the bench found for one method. */
export interface MethodResult {
  readonly bytesRead: number
  readonly bytesWritten: number
  readonly bound: Bound
  /** Crucible's first runs (no input digest known: the inputs are hashed from the merge's reads). */
  readonly crucible: Summary
  /** Warm only: Crucible's reruns, each after a first run whose runs folder it keeps (the inputs' digests known). */
  readonly rerun: Summary | undefined
  readonly torch: Summary | undefined
  readonly agreement: Difference | undefined
}

/** Medians (peak RSS: the largest) of one tool's runs. */
export const summarize = (runs: ReadonlyArray<ToolRun>, bytesRead: number, bound: Bound): Summary => {
  const wall = median(runs.map((r) => r.wallSeconds))
  // The median run: the one whose wall is nearest the median (of an even count, the earlier of the
  // two middle ones). Separate medians of user and sys need not be one run's, nor sum to its CPU.
  const middle = runs.reduce((best, r) => (Math.abs(r.wallSeconds - wall) < Math.abs(best.wallSeconds - wall) ? r : best))
  return {
    wallSeconds: { median: wall, best: Math.min(...runs.map((r) => r.wallSeconds)), all: runs.map((r) => r.wallSeconds) },
    startupSeconds: median(runs.map((r) => r.startupSeconds)),
    mergeSeconds: median(runs.map((r) => r.mergeSeconds)),
    cpuSeconds: middle.userSeconds + middle.systemSeconds,
    userSeconds: middle.userSeconds,
    systemSeconds: middle.systemSeconds,
    peakRssBytes: Math.max(...runs.map((r) => r.peakRssBytes)),
    gbps: (bytesRead + runs[0]!.bytesWritten) / wall / GB,
    overBound: { serial: wall / bound.serialSeconds, overlapped: wall / bound.overlappedSeconds }
  }
}

/** One line of the table. */
export type Row = ReadonlyArray<string>

const f = (x: number, digits = 2) => x.toFixed(digits)

/** The table's line for `tool`'s runs of `method`. */
export const row = (method: string, tool: string, s: Summary): Row => [
  method, tool, f(s.wallSeconds.median, 1), f(s.wallSeconds.best, 1), `${f(s.overBound.serial)}×`, `${f(s.overBound.overlapped)}×`,
  f(s.gbps), `${f(s.cpuSeconds, 1)} (${f(s.userSeconds, 1)} + ${f(s.systemSeconds, 1)})`, f(s.peakRssBytes / MiB, 0), `before ${f(s.startupSeconds, 1)} + merge ${f(s.mergeSeconds, 1)}`
]

const HEAD: Row = ["method", "tool", "wall s", "best", "/bound ser", "/bound ovl", "GB/s", "cpu s (user + sys)", "peak MiB", "split (median s)"]

/** The rows under a header, in columns. */
export const table = (rows: ReadonlyArray<Row>): string => {
  const all = [HEAD, ...rows]
  const widths = HEAD.map((_, i) => Math.max(...all.map((r) => r[i]!.length)) + 2)
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("")).join("\n")
}

const agreementLine = (method: string, a: Difference): string =>
  `${method}: outputs on ${a.tensors} sampled tensors (${(a.elements / 1e6).toFixed(0)}M elements): ${a.differing} differ, ${a.beyondOneUlp} by more than one bf16 ulp; ` +
  `max ${a.maxUlps} ulps where |x| ≥ 2⁻²⁰ (${a.worst ?? "-"}), ${a.maxUlpsNearZero} ulps counting values near zero, max |Δ| ${a.maxAbs.toExponential(2)}` +
  (a.mismatched.length > 0 ? `; mismatched: ${a.mismatched.join(", ")}` : "")

const verdict = (ok: boolean) => (ok ? "met" : "NOT met")

/** The lines under the table. */
export const notes = (o: { cache: string; canDrop: boolean; outIsTmpfs: boolean; disk: DiskBandwidth; results: Record<string, MethodResult> }): string => {
  const lines: Array<string> = []
  lines.push(o.cache === "cold"
    ? `page cache cold: every input shard evicted (fadvise DONTNEED) before each run${o.canDrop ? ", and the whole cache dropped (/proc/sys/vm/drop_caches)" : "; /proc/sys/vm/drop_caches is not writable here, so the rest of the cache stays"}`
    : "page cache warm: inputs read into memory before each run; the disk bound does not apply to reads, GB/s is the figure (compute + copy path)")
  lines.push(`disk bound = read bytes / ${f(o.disk.readBytesPerSecond / GB)} GB/s + written bytes / ${f(o.disk.writeBytesPerSecond / GB)} GB/s (serial), or the larger of the two (overlapped)${o.outIsTmpfs ? "; outputs on tmpfs, so no write term" : ""}`)
  for (const [method, r] of Object.entries(o.results)) {
    lines.push(`${method}: read ${f(r.bytesRead / GB)} GB, wrote ${f(r.bytesWritten / GB)} GB; bound ${f(r.bound.serialSeconds, 1)} s serial, ${f(r.bound.overlappedSeconds, 1)} s overlapped` +
      (r.torch === undefined ? "" : `; torch wall / crucible wall ${f(r.torch.wallSeconds.median / r.crucible.wallSeconds.median)}×, crucible peak RSS ${f((100 * r.crucible.peakRssBytes) / r.torch.peakRssBytes, 0)}% of torch's`))
    if (r.agreement !== undefined) lines.push("  " + agreementLine(method, r.agreement))
  }
  // Issue 15's targets: cold 7B runs against the bound, page-cached runs against 2 GB/s.
  const linear = o.results["linear"], ties = o.results["ties"]
  if (o.cache === "cold") {
    if (linear !== undefined) lines.push(`target linear ≤ 1.3× the bound (serial) with peak RSS ≤ 1 GB: ${f(linear.crucible.overBound.serial)}×, ${f(linear.crucible.peakRssBytes / GB)} GB: ${verdict(linear.crucible.overBound.serial <= 1.3 && linear.crucible.peakRssBytes <= GB)}`)
    if (ties !== undefined) lines.push(`target TIES ≤ 2× the bound (serial) with peak RSS ≤ 1.5 GB: ${f(ties.crucible.overBound.serial)}×, ${f(ties.crucible.peakRssBytes / GB)} GB: ${verdict(ties.crucible.overBound.serial <= 2 && ties.crucible.peakRssBytes <= 1.5 * GB)}`)
  } else if (linear !== undefined) {
    // Judged on the rerun: models in the page cache are models just read, most often by the run before.
    // A first run also hashes the 4 GB it reads (sha256 ≈ 1.7 GB/s a core here): shown beside it.
    const judged = linear.rerun ?? linear.crucible
    lines.push(`target linear ≥ 2 GB/s (read + written) page-cached${o.outIsTmpfs ? ", output on tmpfs" : ", output fsynced to disk"}, ${linear.rerun === undefined ? "first run" : "rerun"}: ${f(judged.gbps)} GB/s: ${verdict(judged.gbps >= 2)}` +
      (linear.rerun === undefined ? "" : ` (a first run, which also hashes its inputs: ${f(linear.crucible.gbps)} GB/s)`))
  }
  return lines.join("\n")
}
