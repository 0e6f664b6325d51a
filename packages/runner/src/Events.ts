/**
 * What a run tells its watchers: a stream of events. Reporters (TTY, plain lines, JSON lines,
 * the dashboard) are functions of these events, so every view shows the same facts.
 *
 * @since 0.1.0
 */
import { Context, Effect } from "effect"

/** A stage and its kind. @category models */
export interface StageRef {
  readonly stage: string
  readonly kind: string
}

/** How a stage ended. @category models */
export type StageStatus = "succeeded" | "failed" | "skipped" | "interrupted"

/** @category models */
export type RunEvent =
  | { readonly type: "run-started"; readonly time: number; readonly runId: string; readonly runDir: string; readonly pipeline: string; readonly stages: ReadonlyArray<string> }
  | { readonly type: "stage-started"; readonly time: number; readonly stage: string; readonly kind: string }
  | { readonly type: "stage-progress"; readonly time: number; readonly stage: string; readonly done: number; readonly total: number; readonly unit: string; readonly bytes?: number | undefined; readonly totalBytes?: number | undefined; readonly detail?: string | undefined }
  | {
      readonly type: "stage-finished"
      readonly time: number
      readonly stage: string
      readonly kind: string
      readonly status: StageStatus
      readonly durationMs: number
      readonly error?: { readonly tag: string; readonly message: string } | undefined
      readonly summary?: string | undefined
      /** The stage's result came from the results store (an earlier run computed it): nothing was recomputed. */
      readonly cached?: boolean | undefined
      /** The stage has the same key as this earlier stage of the run, whose value it took. */
      readonly sameAs?: string | undefined
    }
  | { readonly type: "run-finished"; readonly time: number; readonly status: "succeeded" | "failed" | "interrupted"; readonly durationMs: number; readonly runDir: string }
  | {
      /** Instead of `run-finished` when the run is interrupted (Ctrl-C): what was done, and what a re-run picks up. */
      readonly type: "run-interrupted"
      readonly time: number
      readonly runDir: string
      readonly durationMs: number
      /** Stages that succeeded before the interruption. */
      readonly finished: ReadonlyArray<StageRef>
      /** Stages that failed, or were skipped because a dependency failed. */
      readonly failed: ReadonlyArray<StageRef>
      /** Stages that were running and were stopped. */
      readonly interrupted: ReadonlyArray<StageRef>
      readonly notStarted: ReadonlyArray<StageRef>
      /**
       * Stages with state in the runs folder's cache (`<runs>/.cache/<stage key>/`, checkpoints of
       * stages that train) that running the pipeline again picks up: `reused` as it is (the stage
       * finished), or `resumed` from its last checkpoint.
       */
      readonly saved: ReadonlyArray<StageRef & { readonly dir: string; readonly use: "reused" | "resumed" }>
      /** The command that runs the pipeline again, where the caller knows it (the CLI does). */
      readonly resume?: string | undefined
    }

/**
 * Where events go. The runner emits; the CLI chooses the implementation.
 *
 * @category services
 */
export class Reporter extends Context.Service<Reporter, { readonly emit: (event: RunEvent) => Effect.Effect<void> }>()("crucible/runner/Reporter") {
  /** Drops every event. */
  static readonly silent = { emit: () => Effect.void }
}

/** Emits an event to the current reporter. */
export const emit = (event: RunEvent): Effect.Effect<void, never, Reporter> =>
  Effect.gen(function* () {
    const reporter = yield* Reporter
    yield* reporter.emit(event)
  })
