/**
 * `crucible cache ls|du|gc`: the results store of a runs folder (`<runs>/.cache`, see
 * store/Layout.ts), listed, measured and collected — a thin layer over store/Inventory.ts.
 *
 * @since 0.2.0
 */
import { ByteSize } from "@crucible/core"
import { Effect, Option, Result } from "effect"
import { Command, Flag } from "effect/cli"
import * as path from "node:path"
import * as Inventory from "../store/Inventory.ts"
import type { ExitSink } from "./Commands.ts"
import { ExitCode } from "./ExitCode.ts"
import { bytes, table } from "./Format.ts"
import { err, out } from "./Print.ts"

/** The store: `--cache-dir`, else `<runs-dir>/.cache` (where `crucible run` keeps it). */
export const rootOf = (flags: { readonly runsDir: string; readonly cacheDir: Option.Option<string> }): string =>
  Option.getOrElse(flags.cacheDir, () => path.join(flags.runsDir, ".cache"))

const runsDir = Flag.String("runs-dir").pipe(Flag.withDescription("the runs folder whose store (<runs>/.cache) to use"), Flag.withDefault("runs"))
const cacheDir = Flag.String("cache-dir").pipe(Flag.withDescription("the store itself, when it is not <runs-dir>/.cache"), Flag.optional)
const json = Flag.Boolean("json").pipe(Flag.withDescription("print machine-readable JSON"), Flag.withDefault(false))

const when = (ms: number): string => (ms > 0 ? new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "") : "—")

/** The `ls` table: key (12 hex), kind, stage, type, size, created, last used. @category formatting */
export const formatList = (entries: ReadonlyArray<Inventory.Entry>): string =>
  entries.length === 0
    ? "the store holds no results"
    : table(
      ["key", "kind", "stage", "type", "size", "created", "last used"],
      entries.map((e) => [e.key.slice(0, 12), e.kind, e.stage, e.type, bytes(e.bytes), e.createdAt === "" ? "—" : when(Date.parse(e.createdAt)), when(e.lastUsed)])
    )

/** The `du` lines. @category formatting */
export const formatUsage = (u: Inventory.Usage): string => {
  const types = Object.entries(u.results.byType).sort(([a], [b]) => (a < b ? -1 : 1)).map(([t, n]) => `${t} ${bytes(n)}`).join(", ")
  const rows: ReadonlyArray<readonly [string, number, string]> = [
    ["results", u.results.bytes, `${u.results.count} result${u.results.count === 1 ? "" : "s"}${types === "" ? "" : `: ${types}`}`],
    ["work", u.work, "checkpoints of stages that have not finished"],
    ["tmp", u.tmp, "results being published, and debris"],
    ["digests", u.digests, "file digests"],
    ...(u.other > 0 ? [["other", u.other, "locks, older layouts"] as const] : []),
    ["total", u.total, ""]
  ]
  return rows.map(([part, n, note]) => `${part.padEnd(9)}${bytes(n).padStart(9)}  ${note}`.trimEnd()).join("\n")
}

/** The `gc` lines: each removal, what was left and why, and the bytes freed. @category formatting */
export const formatGc = (report: Inventory.GcReport): string => {
  const verb = report.dryRun ? "would remove" : "removed"
  const lines = report.removed.map((r) =>
    `${verb} ${r.what} ${r.key === undefined ? r.path : r.key.slice(0, 12)}${r.kind === undefined ? "" : ` (${r.kind})`} ${bytes(r.bytes)}: ${r.reason}`
  )
  for (const k of report.kept) lines.push(`kept ${k.path}: ${k.reason}`)
  lines.push(`${report.dryRun ? "would free" : "freed"} ${bytes(report.freed)}${report.removed.length === 0 ? " (nothing to remove)" : ""}; results now ${bytes(report.resultsBytes)}`)
  return lines.join("\n")
}

/** The `cache` command and its subcommands. @category commands */
export const make = (exit: ExitSink) => {
  const ls = Command.make("ls", { runsDir, cacheDir, json }, (flags) =>
    Effect.gen(function* () {
      const entries = yield* Inventory.list(rootOf(flags))
      yield* out(flags.json ? JSON.stringify(entries, null, 2) : formatList(entries))
      exit.code = ExitCode.ok
    })
  ).pipe(Command.withDescription("List the stored results, most recently used first: key, kind, stage, type, size, created, last used."))

  const du = Command.make("du", { runsDir, cacheDir, json }, (flags) =>
    Effect.gen(function* () {
      const usage = yield* Inventory.usage(rootOf(flags))
      yield* out(flags.json ? JSON.stringify(usage, null, 2) : formatUsage(usage))
      exit.code = ExitCode.ok
    })
  ).pipe(Command.withDescription("Bytes on disk of the store: results (by type), work folders (checkpoints), tmp, digests, total."))

  const gc = Command.make(
    "gc",
    {
      runsDir,
      cacheDir,
      json,
      maxSize: Flag.String("max-size").pipe(Flag.withDescription("then remove the least recently used results until the results total at most this, e.g. 20GB"), Flag.optional),
      olderThan: Flag.String("older-than").pipe(Flag.withDescription("remove results unused, and work folders untouched, for longer than this: 30m, 12h, 7d, 2w"), Flag.optional),
      dryRun: Flag.Boolean("dry-run").pipe(Flag.withDescription("print what would be removed; remove nothing"), Flag.withDefault(false))
    },
    (flags) =>
      Effect.gen(function* () {
        const maxSize = Option.map(flags.maxSize, ByteSize.parseByteSize)
        const olderThan = Option.map(flags.olderThan, Inventory.parseAge)
        for (const [flag, parsed] of [["--max-size", maxSize], ["--older-than", olderThan]] as const) {
          if (parsed._tag === "Some" && Result.isFailure(parsed.value)) {
            yield* err(`${flag}: ${parsed.value.failure.message}`)
            exit.code = ExitCode.invalid
            return
          }
        }
        const value = (o: Option.Option<Result.Result<number, unknown>>) => (o._tag === "Some" && Result.isSuccess(o.value) ? o.value.success : undefined)
        const report = yield* Inventory.gc(rootOf(flags), { maxSize: value(maxSize), olderThanMs: value(olderThan), dryRun: flags.dryRun })
        yield* out(flags.json ? JSON.stringify(report, null, 2) : formatGc(report))
        exit.code = ExitCode.ok
      })
  ).pipe(Command.withDescription(
    "Collect the store. Always removes debris: tmp entries of dead processes and lock files of dead holders — with neither " +
      "--older-than nor --max-size that is all it removes. --older-than: results unused and work folders untouched for longer; " +
      "--max-size: then least recently used results until the results fit. Never removes a key locked by a live process."
  ))

  return Command.make("cache").pipe(
    Command.withDescription("The results store of a runs folder (<runs>/.cache): ls, du, gc."),
    Command.withSubcommands([ls, du, gc])
  )
}
