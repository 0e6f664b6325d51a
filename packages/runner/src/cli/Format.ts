/**
 * Pure formatting for the CLI: byte sizes, durations, event lines, plans and inspections.
 * Nothing here writes; the commands decide where text goes.
 *
 * @since 0.1.0
 */
import type { RunEvent } from "../Events.ts"

/** 1536 → "1.5 KB" (decimal units, as disks and mergekit report them). */
export const bytes = (n: number): string => {
  const units = ["B", "KB", "MB", "GB", "TB"]
  let v = n
  let u = 0
  while (Math.abs(v) >= 1000 && u < units.length - 1) (v /= 1000, u++)
  return `${u === 0 ? v : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[u]}`
}

/** 1234 → "1.23 s". */
export const duration = (ms: number): string =>
  ms < 1000 ? `${Math.round(ms)} ms` : ms < 60_000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`

const symbols: Record<string, string> = { succeeded: "✓", failed: "✗", skipped: "-", interrupted: "!" }

/** One plain line per event (for logs and non-TTY output); undefined for events not worth a line. */
export const eventLine = (event: RunEvent): string | undefined => {
  switch (event.type) {
    case "run-started": return `run ${event.runId}: ${event.pipeline} (${event.stages.length} stages) → ${event.runDir}`
    case "stage-started": return `  ▶ ${event.stage} (${event.kind})`
    case "stage-progress": return undefined
    case "stage-finished": {
      const head = `  ${symbols[event.status] ?? "?"} ${event.stage} (${event.kind}) ${event.status}${event.status === "skipped" ? "" : ` in ${duration(event.durationMs)}`}`
      const tail = event.error !== undefined ? `\n      ${event.error.tag}: ${event.error.message.split("\n").join("\n      ")}` : event.summary !== undefined ? ` — ${event.summary}` : ""
      return head + tail
    }
    case "run-finished": return `run ${event.status} in ${duration(event.durationMs)}; manifest: ${event.runDir}/manifest.json`
  }
}

/** A table with left-aligned columns. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n")
}
