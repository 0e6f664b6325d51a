/**
 * `crucible kinds [--json] [--kinds FILE …]`: every stage kind the CLI knows — the built-in ones
 * and those of the given modules — with its inputs, params and output (see `KindCatalog`).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { Command, Flag } from "effect/cli"
import * as KindCatalog from "../KindCatalog.ts"
import * as PipelineSource from "../PipelineSource.ts"
import type { ExitSink } from "./Commands.ts"
import { ExitCode } from "./ExitCode.ts"
import { err, out } from "./Print.ts"

/** The `kinds` command; `kindsFlag` is the CLI's shared `--kinds FILE` flag. @category commands */
export const make = (exit: ExitSink, kindsFlag: Flag.Flag<ReadonlyArray<string>>) =>
  Command.make(
    "kinds",
    {
      kinds: kindsFlag,
      json: Flag.Boolean("json").pipe(Flag.withDescription("print a JSON array of the kinds"), Flag.withDefault(false))
    },
    (flags) =>
      Effect.gen(function* () {
        const registry = yield* Effect.result(PipelineSource.baseRegistry({ kindModules: flags.kinds }))
        if (registry._tag === "Failure") {
          const error = registry.failure
          yield* flags.json ? out(JSON.stringify({ ok: false, error: error._tag, reason: error.reason, message: error.message })) : err(error.message)
          exit.code = ExitCode.invalid
          return
        }
        const catalog = KindCatalog.make(registry.success)
        yield* out(flags.json ? JSON.stringify(catalog, null, 2) : KindCatalog.format(catalog))
        exit.code = ExitCode.ok
      })
  ).pipe(Command.withDescription("List the stage kinds (built-in, and those of --kinds modules): inputs, params (type, default, range) and output."))
