/**
 * `crucible runs [runs-dir] [--json]`: the runs of a runs folder, newest first, with their status
 * as the dashboard shows it — a run whose process is gone while its manifest says `running` is
 * `crashed` (see `Manifest.effectiveStatus`).
 *
 * @since 0.2.0
 */
import { Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as RunData from "../ui/RunData.ts"
import * as ClusterCommands from "./ClusterCommands.ts"
import type { ExitSink } from "./Commands.ts"
import { ExitCode } from "./ExitCode.ts"
import * as Format from "./Format.ts"
import { out } from "./Print.ts"

/** The `runs` command. @category commands */
export const make = (exit: ExitSink) =>
  Command.make(
    "runs",
    {
      runsDir: Argument.String("runs-dir").pipe(Argument.withDescription("the folder of run directories (default: runs)"), Argument.withDefault("runs")),
      json: Flag.Boolean("json").pipe(Flag.withDescription("print a JSON array of the runs"), Flag.withDefault(false)),
      cluster: Flag.String("cluster").pipe(Flag.withDescription("list the runs of this cluster (postgres://…) and their state instead"), Flag.optional)
    },
    (flags) =>
      Effect.gen(function* () {
        if (Option.isSome(flags.cluster)) return yield* ClusterCommands.listRuns(flags.cluster.value, flags.json, exit)
        const runs = yield* RunData.listRuns(flags.runsDir)
        if (flags.json) yield* out(JSON.stringify(runs, null, 2))
        else if (runs.length === 0) yield* out(`no runs in ${flags.runsDir}`)
        else {
          yield* out(Format.table(["run", "pipeline", "status", "started", "duration", "stages"], runs.map((r) => [
            r.runId,
            r.pipeline,
            r.status,
            new Date(r.startedAt).toISOString().replace("T", " ").replace(/\.\d+Z$/, ""),
            r.durationMs === undefined ? "" : Format.duration(r.durationMs),
            r.failed > 0 ? `${r.stages} (${r.failed} failed)` : String(r.stages)
          ])))
        }
        exit.code = ExitCode.ok
      })
  ).pipe(Command.withDescription("List the runs of a runs folder, newest first: pipeline, status (running, succeeded, failed, interrupted, or crashed when its process is gone), start, duration."))
