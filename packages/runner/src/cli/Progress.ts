/**
 * What a progress bar shows, as pure functions shared by the TTY reporter and the dashboard: one
 * measure per bar (its fill and its text count the same thing — bytes when the stage reports them,
 * its own unit otherwise), and the time left at the rate measured since the stage's first report.
 *
 * @since 0.1.0
 */
import { bytes, duration } from "./Format.ts"

/** A progress report as stages send it (`stage-progress`). @category models */
export interface Report {
  readonly done: number
  readonly total: number
  readonly unit: string
  readonly bytes?: number | undefined
  readonly totalBytes?: number | undefined
}

/** The one measure of a bar. @category models */
export interface Amount {
  readonly done: number
  readonly total: number
  readonly unit: string
}

/**
 * The measure a bar shows: bytes when the report counts them (a save's bytes written, a lazy
 * stage's bytes computed), else the report's own unit (epochs, steps, points). Bytes first,
 * because tensors differ in size by orders of magnitude: 3 of 4 tensors may be 1% of the work.
 */
export const amount = (report: Report): Amount =>
  report.unit === "bytes"
    ? { done: report.done, total: report.total, unit: "bytes" }
    : report.bytes !== undefined && report.totalBytes !== undefined && report.totalBytes > 0
    ? { done: report.bytes, total: report.totalBytes, unit: "bytes" }
    : { done: report.done, total: report.total, unit: report.unit }

/** The fill of a bar, in [0, 1]; undefined when the total is unknown. */
export const fraction = (a: Amount): number | undefined => (a.total > 0 ? Math.min(1, Math.max(0, a.done / a.total)) : undefined)

/** `12.6 MB/50.3 MB`, or `3/10 epochs`. */
export const text = (a: Amount): string => (a.unit === "bytes" ? `${bytes(a.done)}/${bytes(a.total)}` : `${a.done}/${a.total} ${a.unit}`)

/** What was done by when, in a bar's measure. @category models */
export interface Sample {
  readonly time: number
  readonly done: number
}

/** The default warm-up: no ETA before this long after the first report. */
export const WARMUP_MS = 1500

/**
 * Milliseconds left at the average rate since `first`: (total − done)·Δt/Δdone. Undefined while
 * warming up (less than `warmupMs` since the first report, or nothing done since) and once done.
 * The first report is the origin, not the stage's start: it comes after the slow start (a worker
 * pool starting, files opening, a lazy stage waiting for its consumer), which would otherwise be
 * extrapolated over the whole run — a 16 s save once showed an ETA of 4 min 54 s.
 */
export const eta = (first: Sample, latest: Sample, total: number, warmupMs = WARMUP_MS): number | undefined => {
  const elapsed = latest.time - first.time
  const progressed = latest.done - first.done
  if (elapsed < warmupMs || progressed <= 0 || latest.done >= total) return undefined
  return ((total - latest.done) * elapsed) / progressed
}

/** ` ETA 12 s`, or nothing while there is no estimate. */
export const etaText = (ms: number | undefined): string => (ms === undefined ? "" : ` ETA ${duration(Math.max(0, ms))}`)

/** The in-place line of a stage's bar on a TTY: `  out [████░░░░] 12.6 MB/50.3 MB ETA 3.20 s layers.3.weight`. */
export const line = (report: Report & { readonly stage: string; readonly detail?: string | undefined }, etaMs: number | undefined, width = 24): string => {
  const a = amount(report)
  const filled = Math.round((fraction(a) ?? 0) * width)
  return `  ${report.stage} [${"█".repeat(filled)}${"░".repeat(width - filled)}] ${text(a)}${etaText(etaMs)}${report.detail === undefined ? "" : ` ${report.detail}`}`
}
