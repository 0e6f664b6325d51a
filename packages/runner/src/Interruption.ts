/**
 * What an interrupted run (Ctrl-C) tells: which stages had finished, which were stopped while
 * running and which had not started, where the run directory is, and what the runs folder's
 * results store (store/Layout.ts) holds that running the pipeline again picks up: a stage whose
 * result is stored (`results/<key>/result.json`) is reused as it is; a stage that trains (`train`,
 * `distill`, `progressive/cascade`) and was stopped resumes from the checkpoints in its
 * `work/<key>/` folder. Every other stage runs again.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import type { RunEvent } from "./Events.ts"
import type { StageOutcome } from "./Executor.ts"
import * as Layout from "./store/Layout.ts"

/** The event of an interrupted run. @category models */
export type Interrupted = Extract<RunEvent, { readonly type: "run-interrupted" }>

/** Which stages a run has started, from its events (an interrupted stage's outcome does not say). @category models */
export interface StartedStages {
  readonly observe: (event: RunEvent) => void
  readonly has: (stage: string) => boolean
}

/** An empty record of started stages. @category constructors */
export const startedStages = (): StartedStages => {
  const started = new Set<string>()
  return {
    observe: (event) => {
      if (event.type === "stage-started") started.add(event.stage)
    },
    has: (stage) => started.has(stage)
  }
}

/** Whether a stage's work folder holds anything: only stages that keep state across runs write there. */
const holdsState = (dir: string): boolean => {
  try {
    return fs.readdirSync(dir).length > 0
  } catch {
    return false
  }
}

/**
 * The `run-interrupted` event, from each stage's outcome (in pipeline order) and whether it had
 * started. `cacheRoot` is the results store's root (the executor's default: `<runs>/.cache`).
 * Each `saved` entry's `dir` is the stored result's `result.json` (`use: "reused"`) or the
 * stage's work folder of checkpoints (`use: "resumed"`).
 *
 * @category constructors
 */
export const event = (input: {
  readonly outcomes: ReadonlyArray<StageOutcome>
  readonly started: StartedStages
  readonly runDir: string
  readonly cacheRoot: string
  readonly durationMs: number
  readonly time: number
}): Interrupted => {
  const named = (o: StageOutcome) => ({ stage: o.id, kind: o.kind })
  const stopped = (o: StageOutcome) => o.status === "interrupted" && input.started.has(o.id)
  return {
    type: "run-interrupted",
    time: input.time,
    runDir: input.runDir,
    durationMs: input.durationMs,
    finished: input.outcomes.filter((o) => o.status === "succeeded").map(named),
    failed: input.outcomes.filter((o) => o.status === "failed" || o.status === "skipped").map(named),
    interrupted: input.outcomes.filter(stopped).map(named),
    notStarted: input.outcomes.filter((o) => o.status !== "succeeded" && o.status !== "failed" && o.status !== "skipped" && !stopped(o)).map(named),
    saved: input.outcomes.flatMap((o): Interrupted["saved"] => {
      const result = Layout.resultFile(input.cacheRoot, o.key)
      if (fs.existsSync(result)) return [{ stage: o.id, kind: o.kind, dir: result, use: "reused" as const }]
      const work = Layout.workDir(input.cacheRoot, o.key)
      return holdsState(work) ? [{ stage: o.id, kind: o.kind, dir: work, use: "resumed" as const }] : []
    })
  }
}
