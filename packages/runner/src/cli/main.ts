/**
 * The `crucible` executable: runs the command tree with Node's services and sets the exit code
 * (SIGINT interrupts the run; its stages clean up, then the process exits 130).
 *
 * @since 0.1.0
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Cause, Effect, Exit } from "effect"
import { Command } from "effect/cli"
import { createRequire } from "node:module"
import * as Commands from "./Commands.ts"
import { ExitCode } from "./ExitCode.ts"

const version = (createRequire(import.meta.url)("../../package.json") as { version: string }).version
const exit: Commands.ExitSink = { code: ExitCode.ok }

const program = Command.run(Commands.make(exit), { version }).pipe(Effect.provide(NodeServices.layer))

NodeRuntime.runMain(program, {
  disableErrorReporting: false,
  teardown: (result, onExit) => {
    if (Exit.isSuccess(result)) return onExit(exit.code)
    if (Cause.hasInterruptsOnly(result.cause)) return onExit(ExitCode.interrupted)
    // A parse error of the command line is the user's input: 2, like an invalid pipeline.
    return onExit(ExitCode.invalid)
  }
})
