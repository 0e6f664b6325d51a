// A cluster on loopback for the tests: a private Postgres (support/Postgres.ts), a shared store
// folder, and `crucible worker` processes (the bundled CLI users run), each a real runner of the
// cluster. Workers are child processes so a test can kill -9 one.
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { cliMain } from "../e2e/cli.ts"
import { type PgServer, startPostgres } from "../support/Postgres.ts"

export interface WorkerProcess {
  readonly id: string
  readonly child: ChildProcessWithoutNullStreams
  /** Everything it printed so far (stdout and stderr). */
  readonly output: () => string
  /** Resolves when it has exited. */
  readonly exited: Promise<number | null>
}

export interface TestCluster {
  readonly pg: PgServer
  /** The cluster's Postgres URL (a database of its own). */
  readonly url: string
  /** The shared store folder. */
  readonly store: string
  /** A temporary folder for the test's pipeline and outputs. */
  readonly dir: string
  readonly workers: Array<WorkerProcess>
  /** Starts one more worker (`crucible worker --cluster url --store store --id ID ...extra`) and waits until it listens. */
  readonly startWorker: (id: string, extra?: ReadonlyArray<string>) => Promise<WorkerProcess>
  /** Stops every worker (SIGTERM, then SIGKILL) and Postgres, and removes the folders. */
  readonly stop: () => Promise<void>
}

let databases = 0

/** A cluster with `workers` workers started (ids w1, w2, …). */
export const startCluster = async (options: { readonly workers?: number; readonly workerArgs?: ReadonlyArray<string> } = {}): Promise<TestCluster> => {
  const pg = await startPostgres()
  const url = await pg.createDatabase(`cluster${++databases}`)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-cluster-"))
  const store = path.join(dir, "store")
  fs.mkdirSync(store)
  const workers: Array<WorkerProcess> = []
  const startWorker = (id: string, extra: ReadonlyArray<string> = []) =>
    new Promise<WorkerProcess>((resolve, reject) => {
      const child = spawn(process.execPath, [cliMain, "worker", "--cluster", url, "--store", store, "--id", id, ...(options.workerArgs ?? []), ...extra], {
        cwd: dir,
        env: { ...process.env, CI: "1" },
        stdio: ["pipe", "pipe", "pipe"]
      })
      let text = ""
      const exited = new Promise<number | null>((done) => child.on("exit", (code) => done(code)))
      const worker: WorkerProcess = { id, child, output: () => text, exited }
      const timer = setTimeout(() => reject(new Error(`worker ${id} did not start listening within 30 s:\n${text}`)), 30_000)
      const onData = (chunk: Buffer) => {
        text += chunk.toString()
        if (/Listening on:/.test(text)) {
          clearTimeout(timer)
          resolve(worker)
        }
      }
      child.stdout.on("data", onData)
      child.stderr.on("data", onData)
      void exited.then((code) => {
        clearTimeout(timer)
        reject(new Error(`worker ${id} exited (${code}) before it listened:\n${text}`))
      })
      workers.push(worker)
    })
  for (let i = 1; i <= (options.workers ?? 3); i++) await startWorker(`w${i}`)
  const stop = async () => {
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill("SIGTERM")
    await Promise.race([Promise.all(workers.map((w) => w.exited)), new Promise((r) => setTimeout(r, 10_000))])
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill("SIGKILL")
    await pg.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  return { pg, url, store, dir, workers, startWorker, stop }
}
