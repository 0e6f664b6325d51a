/**
 * Real child processes for the crash-safety tests (Owner, AtomicFile.sweepOrphans, LockFile):
 * a `node -e` script that knows its own owner token, does one thing and blocks until killed.
 */
import { Effect, type Scope } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"

/** A running child: its pid, start time and the first line it printed. */
export interface Child {
  readonly pid: number
  readonly start: string
  readonly line: string
  readonly process: ChildProcess
  /** SIGKILL, then wait until it is reaped (a zombie would still answer `kill(pid, 0)`). */
  readonly kill: Effect.Effect<void>
  /** Waits until it exits by itself. */
  readonly exited: Effect.Effect<void>
}

// The prelude every child runs: its token, as Owner.ts computes it.
const PRELUDE = `
const fs = require("node:fs"), os = require("node:os"), crypto = require("node:crypto")
const stat = fs.readFileSync("/proc/self/stat", "utf8")
const start = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]
const token = process.pid + "-" + start
const [file, arg] = process.argv.slice(1)
const block = () => setInterval(() => {}, 1 << 30)
`

/** Scripts: `partial` writes an AtomicFile-style temporary beside `file` and prints its path; `lock` takes the lock `file` (releasing it after `arg` ms if given). */
const SCRIPTS = {
  partial: `
const path = require("node:path")
const tmp = path.join(path.dirname(file), "." + path.basename(file) + "." + token + "." + crypto.randomBytes(6).toString("hex") + ".partial")
fs.writeFileSync(tmp, "half a model", { flag: "wx" })
console.log(tmp)
block()`,
  lock: `
fs.writeFileSync(file, JSON.stringify({ pid: process.pid, start, host: os.hostname(), acquiredAt: new Date().toISOString(), info: { stage: "child" } }), { flag: "wx" })
console.log("locked")
if (arg) setTimeout(() => { fs.rmSync(file); process.exit(0) }, Number(arg)); else block()`
} as const

/** Spawns a child running one of the scripts; it is killed (if still running) when the scope closes. */
export const child = (script: keyof typeof SCRIPTS, file: string, arg?: string): Effect.Effect<Child, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<Child, Error>((resume) => {
      const proc = spawn(process.execPath, ["-e", PRELUDE + SCRIPTS[script], file, ...(arg === undefined ? [] : [arg])], { stdio: ["ignore", "pipe", "inherit"] })
      const exit = new Promise<void>((done) => proc.once("exit", () => done()))
      let out = ""
      proc.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
        out += chunk
        const nl = out.indexOf("\n")
        if (nl < 0) return
        const stat = fs.readFileSync(`/proc/${proc.pid}/stat`, "utf8")
        const start = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!
        resume(Effect.succeed({
          pid: proc.pid!,
          start,
          line: out.slice(0, nl),
          process: proc,
          kill: Effect.promise(() => {
            if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL")
            return exit
          }),
          exited: Effect.promise(() => exit)
        }))
      })
      proc.once("error", (error) => resume(Effect.fail(error)))
    }),
    (c) => c.kill
  )
