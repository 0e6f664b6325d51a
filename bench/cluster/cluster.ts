// The processes the bench times, all through the installed CLI (the bundle packages/runner/bin/crucible.mjs):
// a private Postgres (the cluster tests' packages/runner/test/support/Postgres.ts), `crucible worker`
// children, and `crucible run` — local or `--cluster` — timed from spawn to exit.
//
// packages/runner/test/cluster/harness.ts does the same for the tests, but removes its folder on stop
// and hides the workers' pids; the bench keeps the folders with --keep and reads each worker's peak RSS
// (VmHWM) before stopping it, so the few lines it needs are here.
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { type PgServer, startPostgres } from "../../packages/runner/test/support/Postgres.ts"

export const ROOT = path.resolve(import.meta.dirname, "..", "..")
export const CLI = path.join(ROOT, "packages", "runner", "bin", "crucible.mjs")
// CI=1: plain output, no progress bars redrawn on a terminal.
const ENV = { ...process.env, CI: "1" }

export interface Worker {
  readonly id: string
  readonly child: ChildProcess
  readonly output: () => string
}

export interface Cluster {
  readonly url: string
  readonly store: string
  readonly workers: ReadonlyArray<Worker>
  /** Each worker's peak resident memory so far in MiB (VmHWM), read now; then stops them. */
  readonly stop: () => Promise<ReadonlyArray<{ readonly id: string; readonly peakRssMiB: number | undefined }>>
}

/** One Postgres for the whole bench; each configuration gets a database of its own. */
export const postgres = (): Promise<PgServer> => startPostgres()

/** VmHWM of a live process in MiB (undefined where /proc is not there). */
export const peakRssMiB = (pid: number | undefined): number | undefined => {
  if (pid === undefined) return undefined
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
    return m === null ? undefined : Number(m[1]) / 1024
  } catch {
    return undefined
  }
}

const startWorker = (url: string, store: string, cwd: string, id: string, extra: ReadonlyArray<string>): Promise<Worker> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, "worker", "--cluster", url, "--store", store, "--id", id, ...extra], { cwd, env: ENV, stdio: ["ignore", "pipe", "pipe"] })
    let text = ""
    const timer = setTimeout(() => reject(new Error(`worker ${id} did not start listening within 60 s:\n${text}`)), 60_000)
    const onData = (chunk: Buffer) => {
      text += chunk.toString()
      if (/Listening on:/.test(text)) {
        clearTimeout(timer)
        resolve({ id, child, output: () => text })
      }
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onData)
    child.on("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`worker ${id} exited (${code}) before it listened:\n${text}`))
    })
  })

/** Workers w1…wN (`--slots 1` unless `workerArgs` say otherwise) on a fresh database and a fresh store under `dir`. */
export const startCluster = async (pg: PgServer, name: string, dir: string, workers: number, workerArgs: ReadonlyArray<string> = ["--slots", "1"]): Promise<Cluster> => {
  const url = await pg.createDatabase(name)
  const store = path.join(dir, "store")
  fs.mkdirSync(store, { recursive: true })
  const started: Array<Worker> = []
  try {
    for (let i = 1; i <= workers; i++) started.push(await startWorker(url, store, dir, `w${i}`, workerArgs))
  } catch (e) {
    for (const w of started) w.child.kill("SIGKILL")
    throw e
  }
  const stop = async () => {
    const peaks = started.map((w) => ({ id: w.id, peakRssMiB: peakRssMiB(w.child.pid) }))
    const exits = started.map((w) => (w.child.exitCode !== null || w.child.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => w.child.on("exit", () => r()))))
    for (const w of started) w.child.kill("SIGTERM")
    const hard = setTimeout(() => { for (const w of started) w.child.kill("SIGKILL") }, 10_000)
    await Promise.all(exits)
    clearTimeout(hard)
    return peaks
  }
  return { url, store, workers: started, stop }
}

export interface Timed {
  readonly code: number | null
  readonly seconds: number
  /** Wall-clock ms (Date.now) at spawn and at exit, to line up with the run folders' event times. */
  readonly startedAt: number
  readonly endedAt: number
  /** Peak RSS of the `crucible` process in MiB, from /usr/bin/time when the machine has it. */
  readonly peakRssMiB: number | undefined
  readonly stdout: string
  readonly stderr: string
}

const TIME = fs.existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined

/**
 * `crucible args…` in `cwd`, timed from spawn to exit (the CLI's start-up is in every figure alike).
 * Under /usr/bin/time when it is there, for the process's peak RSS; its own start costs ~1 ms.
 */
export const crucible = (args: ReadonlyArray<string>, cwd: string): Promise<Timed> =>
  new Promise((resolve) => {
    const rusage = path.join(cwd, `.time-${process.pid}-${Date.now()}`)
    const [file, argv] = TIME === undefined
      ? [process.execPath, [CLI, ...args]]
      : [TIME, ["-f", "%M", "-o", rusage, process.execPath, CLI, ...args]]
    const startedAt = Date.now()
    const start = performance.now()
    const child = spawn(file, argv, { cwd, env: ENV, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()))
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()))
    child.on("exit", (code) => {
      const seconds = (performance.now() - start) / 1000
      let peak: number | undefined
      if (TIME !== undefined && fs.existsSync(rusage)) {
        const kb = Number(fs.readFileSync(rusage, "utf8").trim().split("\n").at(-1))
        peak = Number.isFinite(kb) ? kb / 1024 : undefined
        fs.rmSync(rusage, { force: true })
      }
      resolve({ code, seconds, startedAt, endedAt: Date.now(), peakRssMiB: peak, stdout, stderr })
    })
  })
