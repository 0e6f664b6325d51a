// Real child processes for the store's crash-safety tests: a child that prints its Owner (to be
// SIGKILLed: a dead owner whose pid and start time are real), and one that holds a lock with
// core's own LockFile.acquire. They run core's TypeScript directly (Node's type stripping).
import { spawn, type ChildProcess } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type { Owner } from "@crucible/core"

const core = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../core")
const io = (module: string) => JSON.stringify(path.join(core, "src/io", `${module}.ts`))

/** A running child and the Owner it printed. */
export interface Child {
  readonly owner: Owner.Owner
  readonly process: ChildProcess
  /** SIGKILL, resolved once it has been reaped (a zombie still answers `kill(pid, 0)`). */
  readonly kill: () => Promise<void>
}

const start = (script: string): Promise<Child> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--experimental-strip-types", "--no-warnings", "--input-type=module", "-e", script], { cwd: core, stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    let errors = ""
    const exited = new Promise<void>((done) => child.on("exit", () => done()))
    child.stderr.on("data", (c: Buffer) => (errors += c.toString()))
    child.on("exit", (code) => reject(new Error(`child exited (${code}) before it was ready: ${errors}`)))
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString()
      const end = out.indexOf("\n")
      if (end < 0) return
      resolve({ owner: JSON.parse(out.slice(0, end)) as Owner.Owner, process: child, kill: () => (child.kill("SIGKILL"), exited) })
    })
  })

/** A child that prints its Owner and waits to be killed. */
export const ownerChild = (): Promise<Child> =>
  start(`const Owner = await import(${io("Owner")}); console.log(JSON.stringify(Owner.current())); setInterval(() => {}, 1 << 30)`)

/** A child holding the lock `file` (LockFile.acquire, `info: { runId, stage }`) until killed. */
export const lockChild = (file: string, info: { readonly runId: string; readonly stage: string }): Promise<Child> =>
  start(`
const { Effect } = await import("effect")
const LockFile = await import(${io("LockFile")})
const Owner = await import(${io("Owner")})
Effect.runFork(Effect.scoped(Effect.gen(function* () {
  yield* LockFile.acquire(${JSON.stringify(file)}, { info: ${JSON.stringify(info)} })
  console.log(JSON.stringify(Owner.current()))
  yield* Effect.never
})))`)

/** The Owner of a process that has been SIGKILLed and reaped. */
export const deadOwner = async (): Promise<Owner.Owner> => {
  const child = await ownerChild()
  await child.kill()
  return child.owner
}
