/**
 * `crucible import config.yml [--out DIR]`: prints the Crucible pipeline a mergekit config
 * compiles to — the file a user would write, which, saved beside the config and run, does the
 * same merge. The config is validated first (every problem at its mergekit line:col).
 *
 * @since 0.1.0
 */
import { Mergekit, PipelineError, Problem } from "@crucible/core"
import { Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as fs from "node:fs"
import * as PipelineSource from "../PipelineSource.ts"
import type { ExitSink } from "./Commands.ts"
import { ExitCode } from "./ExitCode.ts"
import { err, out } from "./Print.ts"

/** The `import` command. @category commands */
export const make = (exit: ExitSink, kindsFlag: Flag.Flag<ReadonlyArray<string>>) =>
  Command.make(
    "import",
    {
      config: Argument.String("config").pipe(Argument.withDescription("a mergekit config (mergekit-yaml's, or mergekit-multi's several documents)")),
      out: Flag.String("out").pipe(Flag.withDescription("the folder the merged model is written to (default: merged/ beside the config)"), Flag.optional),
      kinds: kindsFlag
    },
    (flags) =>
      Effect.gen(function* () {
        const file = flags.config
        const outDir = Option.getOrUndefined(flags.out)
        const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : undefined
        if (text === undefined || !Mergekit.isMergekit(text)) {
          yield* err(text === undefined ? `cannot read ${file}` : `${file} is not a mergekit config (it has no top-level merge_method:)`)
          exit.code = ExitCode.invalid
          return
        }
        // Validated as `crucible validate` would (headers not read): the printed pipeline is one that loads.
        const loaded = yield* Effect.result(PipelineSource.load(file, { kindModules: flags.kinds, out: outDir }))
        if (loaded._tag === "Failure") {
          yield* err(loaded.failure.message)
          exit.code = ExitCode.invalid
          return
        }
        const compiled = Mergekit.compile(text, { file, out: outDir })
        if (compiled.ir === undefined) {
          yield* err(new PipelineError.PipelineInvalid({ file, problems: compiled.problems }).message)
          exit.code = ExitCode.invalid
          return
        }
        const warnings = loaded.success.warnings
        if (warnings.length > 0) yield* err(warnings.map((w) => Problem.format(w, file)).join("\n\n"))
        yield* out(Mergekit.toYaml(compiled.ir, compiled.notes).trimEnd())
        exit.code = ExitCode.ok
      })
  ).pipe(Command.withDescription("Print the Crucible pipeline a mergekit config compiles to (run it as is with crucible run config.yml --out DIR)."))
