/**
 * `crucible schema [--draft 07|2020-12] [--kinds FILE …]`: prints the JSON Schema of the pipeline
 * format for the kinds the CLI knows (see `PipelineSchema`), for editors:
 *
 * ```sh
 * crucible schema > crucible.schema.json   # then, atop a pipeline:
 * # yaml-language-server: $schema=./crucible.schema.json
 * ```
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { Command, Flag } from "effect/cli"
import * as PipelineSchema from "../PipelineSchema.ts"
import * as PipelineSource from "../PipelineSource.ts"
import type { ExitSink } from "./Commands.ts"
import { ExitCode } from "./ExitCode.ts"
import { err, out } from "./Print.ts"

/** The `schema` command; `kindsFlag` is the CLI's shared `--kinds FILE` flag. @category commands */
export const make = (exit: ExitSink, kindsFlag: Flag.Flag<ReadonlyArray<string>>) =>
  Command.make("schema", {
    kinds: kindsFlag,
    draft: Flag.Literals("draft", ["07", "2020-12"]).pipe(Flag.withDescription("the JSON Schema draft: 07 (default; what editors support best) or 2020-12"), Flag.withDefault("07"))
  }, (flags) =>
    Effect.gen(function* () {
      const registry = yield* Effect.result(PipelineSource.baseRegistry({ kindModules: flags.kinds }))
      if (registry._tag === "Failure") {
        yield* err(registry.failure.message)
        exit.code = ExitCode.invalid
        return
      }
      yield* out(JSON.stringify(PipelineSchema.make(registry.success, flags.draft === "07" ? "draft-07" : "draft-2020-12"), null, 2))
      exit.code = ExitCode.ok
    })
  ).pipe(Command.withDescription("Print the JSON Schema (draft-07, or 2020-12) of pipeline files for the known stage kinds; for editors: crucible schema > crucible.schema.json"))
