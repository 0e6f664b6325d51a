/**
 * The `crucible` executable: runs the command tree with Node's services and sets the exit code
 * (SIGINT interrupts the run; its stages clean up, then the process exits 130).
 *
 * @since 0.1.0
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Cause, Effect, Exit, Logger } from "effect"
import { Command } from "effect/cli"
import packageJson from "../../package.json" with { type: "json" }
import * as Commands from "./Commands.ts"
import { ExitCode } from "./ExitCode.ts"

const version = packageJson.version
const exit: Commands.ExitSink = { code: ExitCode.ok }

// Logs go to stderr: stdout carries what a command answers (`--json` documents and event lines).
const program = Command.run(Commands.make(exit), { version }).pipe(Effect.provide(NodeServices.layer), Effect.provideService(Logger.LogToStderr, true))

// The signal that stopped the program, if one did: a command whose synchronous work (parsing a
// pipeline) ran past the signal still exits 130/143, never 0.
let signalled: number | undefined
process.once("SIGINT", () => (signalled ??= ExitCode.interrupted))
process.once("SIGTERM", () => (signalled ??= ExitCode.terminated))

const codeOf = (result: Exit.Exit<unknown, unknown>): number =>
  signalled ?? (Exit.isSuccess(result) ? exit.code : Cause.hasInterruptsOnly(result.cause) ? ExitCode.interrupted : ExitCode.invalid) // a bad command line is invalid input

// The run's telemetry is flushed and its files closed when the program ends; exit then, rather than
// wait for idle keep-alive sockets of an OTLP exporter to time out.
NodeRuntime.runMain(program, {
  disableErrorReporting: false,
  teardown: (result) => process.exit(codeOf(result))
})
