/**
 * The CLI's reporters: a live progress view on a TTY, plain lines elsewhere, one JSON object
 * per line with `--json`, nothing with `--quiet`. Colour and in-place updates only when stdout
 * is a TTY and CI is not set.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { RunEvent } from "../Events.ts"
import { Reporter } from "../Events.ts"
import { eventLine, progressLine } from "./Format.ts"

/** @category models */
export type ReporterName = "tty" | "plain" | "json" | "quiet"

/** Chooses the reporter for the flags and the terminal. */
export const choose = (flags: { readonly json: boolean; readonly quiet: boolean }, stream: NodeJS.WriteStream = process.stdout): ReporterName =>
  flags.json ? "json" : flags.quiet ? "quiet" : stream.isTTY === true && process.env.CI === undefined ? "tty" : "plain"

/** A reporter writing to `write`. */
export const make = (name: ReporterName, write: (text: string) => void = (t) => process.stdout.write(t)): Reporter["Service"] => {
  switch (name) {
    case "quiet": return Reporter.silent
    case "json": return { emit: (event) => Effect.sync(() => write(`${JSON.stringify(event)}\n`)) }
    case "plain": return { emit: (event) => Effect.sync(() => { const line = eventLine(event); if (line !== undefined) write(`${line}\n`) }) }
    case "tty": return tty(write)
  }
}

const tty = (write: (text: string) => void): Reporter["Service"] => {
  const started = new Map<string, number>()
  let live = false
  let lastDraw = 0
  const clear = () => {
    if (live) write("\r\x1b[2K")
    live = false
  }
  return {
    emit: (event: RunEvent) =>
      Effect.sync(() => {
        if (event.type === "stage-started") started.set(event.stage, event.time)
        if (event.type === "stage-progress") {
          // Redraw at most 20 times a second: progress events can come per tensor.
          if (event.time - lastDraw < 50 && event.done < event.total) return
          lastDraw = event.time
          clear()
          write(progressLine(event, started.get(event.stage) ?? event.time, event.time).slice(0, (process.stdout.columns ?? 100) - 1))
          live = true
          return
        }
        const line = eventLine(event)
        if (line === undefined) return
        clear()
        const colour = event.type === "stage-finished" ? ({ succeeded: 32, failed: 31, skipped: 33, interrupted: 35 } as const)[event.status] : undefined
        write(colour === undefined ? `${line}\n` : `\x1b[${colour}m${line}\x1b[0m\n`)
      })
  }
}
