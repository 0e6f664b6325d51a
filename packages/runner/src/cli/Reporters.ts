/**
 * The CLI's reporters: a live progress view on a TTY, plain lines elsewhere, one JSON object
 * per line with `--json` (a `stage-finished` event carries `cached` and `sameAs` as they are), and with `--quiet` only failures, on stderr (the failed stages with their
 * errors, then the run's line naming its directory). Colour and in-place updates only when stdout
 * is a TTY and CI is not set.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { RunEvent } from "../Events.ts"
import { Reporter } from "../Events.ts"
import { duration, eventLine } from "./Format.ts"
import * as Progress from "./Progress.ts"

/**
 * The line of an event, as `Format.eventLine` writes it, except for a stage that computed nothing:
 * `  ✓ train (train) cached (3 ms)` when its result came from the results store, and
 * `  = train2 (train) same as train` when it had the key of an earlier stage of the run.
 *
 * @category formatting
 */
export const line = (event: RunEvent): string | undefined => {
  if (event.type !== "stage-finished" || event.status !== "succeeded" || (event.cached !== true && event.sameAs === undefined)) return eventLine(event)
  const head = event.sameAs !== undefined ? `  = ${event.stage} (${event.kind}) same as ${event.sameAs}` : `  ✓ ${event.stage} (${event.kind}) cached (${duration(event.durationMs)})`
  return `${head}${event.summary === undefined ? "" : ` — ${event.summary}`}`
}

/** @category models */
export type ReporterName = "tty" | "plain" | "json" | "quiet"

/** Chooses the reporter for the flags and the terminal. */
export const choose = (flags: { readonly json: boolean; readonly quiet: boolean }, stream: NodeJS.WriteStream = process.stdout): ReporterName =>
  flags.json ? "json" : flags.quiet ? "quiet" : stream.isTTY === true && process.env.CI === undefined ? "tty" : "plain"

/**
 * A reporter writing to `write` (`columns`: the terminal's width, for the TTY's bars; `writeError`:
 * where `quiet` tells failures).
 */
export const make = (
  name: ReporterName,
  write: (text: string) => void = (t) => process.stdout.write(t),
  columns: () => number = () => process.stdout.columns ?? 100,
  writeError: (text: string) => void = (t) => process.stderr.write(t)
): Reporter["Service"] => {
  switch (name) {
    case "quiet": return { emit: (event) => Effect.sync(() => { const line = failureLine(event); if (line !== undefined) writeError(`${line}\n`) }) }
    case "json": return { emit: (event) => Effect.sync(() => write(`${JSON.stringify(event)}\n`)) }
    case "plain": return { emit: (event) => Effect.sync(() => { const text = line(event); if (text !== undefined) write(`${text}\n`) }) }
    case "tty": return tty(write, columns)
  }
}

// `--quiet` is silent about everything that went well, never about a failure.
const failureLine = (event: RunEvent): string | undefined =>
  (event.type === "stage-finished" && event.status === "failed") || (event.type === "run-finished" && event.status === "failed") ? eventLine(event) : undefined

// One bar per stage in progress, redrawn in place below the finished lines: a lazy merge and the
// save that pulls it report at the same time, and one shared line would flicker between them.
const tty = (write: (text: string) => void, columns: () => number): Reporter["Service"] => {
  const first = new Map<string, Progress.Sample>()
  const bars = new Map<string, string>()
  let drawn = 0
  let lastDraw = 0
  const clear = () => {
    // The cursor is at the end of the last bar: clear it, then each one above.
    if (drawn > 0) write(`\r\x1b[2K${"\x1b[1A\x1b[2K".repeat(drawn - 1)}`)
    drawn = 0
  }
  const draw = () => {
    const lines = [...bars.values()].map((l) => l.slice(0, columns() - 1))
    if (lines.length > 0) write(lines.join("\n"))
    drawn = lines.length
  }
  return {
    emit: (event: RunEvent) =>
      Effect.sync(() => {
        if (event.type === "stage-progress") {
          const amount = Progress.amount(event)
          const sample = { time: event.time, done: amount.done }
          if (!first.has(event.stage)) first.set(event.stage, sample)
          bars.set(event.stage, Progress.line(event, Progress.eta(first.get(event.stage)!, sample, amount.total)))
          // Redraw at most 20 times a second: progress events can come per tensor.
          if (event.time - lastDraw < 50 && amount.done < amount.total) return
          lastDraw = event.time
          clear()
          draw()
          return
        }
        if (event.type === "stage-finished") {
          bars.delete(event.stage)
          first.delete(event.stage)
        }
        const text = line(event)
        if (text === undefined) return
        clear()
        const colour = event.type === "stage-finished" ? ({ succeeded: 32, failed: 31, skipped: 33, interrupted: 35 } as const)[event.status] : undefined
        write(colour === undefined ? `${text}\n` : `\x1b[${colour}m${text}\x1b[0m\n`)
        draw()
      })
  }
}
