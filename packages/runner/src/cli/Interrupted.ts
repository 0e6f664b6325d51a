/**
 * What `crucible run` says when it is interrupted (Ctrl-C): the stages that finished, those that
 * were stopped and those that never started, the run directory, what running the same command
 * again picks up, and that command. On stderr whatever the reporter (the `--json` event carries
 * the same facts, `resume` included), written before the process exits 130.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import * as path from "node:path"
import type { Reporter, StageRef } from "../Events.ts"
import type { Interrupted } from "../Interruption.ts"
import { duration } from "./Format.ts"

/**
 * The command that runs the pipeline again: `crucible` and the same arguments, without
 * `--run-id` (reusing the id would write the new run into the interrupted run's directory).
 *
 * @category formatting
 */
export const resumeCommand = (args: ReadonlyArray<string>): string => {
  const kept: Array<string> = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (arg === "--run-id") i++
    else if (!arg.startsWith("--run-id=")) kept.push(arg)
  }
  return ["crucible", ...kept].map(quote).join(" ")
}

/** A shell word: as is when it is safe, else in single quotes. */
const quote = (word: string): string => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`)

const list = (stages: ReadonlyArray<StageRef>): string => stages.map((s) => `${s.stage} (${s.kind})`).join(", ")

/**
 * The lines printed for an interrupted run. Paths are shown relative to `cwd` when they are
 * inside it.
 *
 * @category formatting
 */
export const message = (event: Interrupted, cwd: string = process.cwd()): string => {
  const shown = (p: string) => {
    const relative = path.relative(cwd, p)
    return relative !== "" && !relative.startsWith("..") && !path.isAbsolute(relative) ? relative : p
  }
  const rows: Array<readonly [string, ReadonlyArray<StageRef>]> = [
    ["finished", event.finished],
    ["failed", event.failed],
    ["stopped", event.interrupted],
    ["not started", event.notStarted]
  ]
  const lines = [`interrupted after ${duration(event.durationMs)}`]
  for (const [label, stages] of rows) if (stages.length > 0) lines.push(`  ${`${label}:`.padEnd(13)}${list(stages)}`)
  lines.push(`  run directory: ${shown(event.runDir)} (manifest.json has each stage's state)`)
  if (event.saved.length > 0) {
    lines.push("  a re-run picks up what the runs folder's results store keeps:")
    for (const s of event.saved) {
      // `dir`: the stored result's result.json, or the stage's work folder of checkpoints.
      const use = s.use === "reused" ? "stored, reused as it is" : "resumes from its last checkpoint"
      lines.push(`    ${s.stage} (${s.kind}): ${use} (${shown(s.dir)})`)
    }
    lines.push("  every other stage runs again")
  } else {
    lines.push("  nothing was stored or checkpointed: a re-run runs every stage again")
  }
  if (event.resume !== undefined) lines.push(`  to run it again: ${event.resume}`)
  return lines.join("\n")
}

/**
 * `inner`, and on an interrupted run: the event, with `resume`, goes on to `inner`, and the
 * message to `write` (stderr, flushed, in the CLI).
 *
 * @category combinators
 */
export const reporting = (inner: Reporter["Service"], resume: string, write: (text: string) => Effect.Effect<void>): Reporter["Service"] => ({
  emit: (event) => {
    if (event.type !== "run-interrupted") return inner.emit(event)
    const told = { ...event, resume }
    return Effect.andThen(write(message(told)), inner.emit(told))
  }
})
