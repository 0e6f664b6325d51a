/**
 * A private PostgreSQL for the cluster tests: a fresh cluster (initdb) in a temporary folder, listening on
 * 127.0.0.1 on a free port, its unix socket inside that folder, so tests never share or touch a system server.
 * Postgres refuses to run as root, so as root its tools run as the `postgres` OS user (Debian's package
 * creates it) and the folder is handed to that user; as any other user they run directly.
 */
import { execFile, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import type { TestContext } from "vitest"
import { Schema } from "effect"
import { skipUnlessPresent } from "./Requires.ts"

/** A Postgres tool failed: `step` names what was being done, `detail` what the tool said. */
export class PostgresError extends Schema.TaggedError<PostgresError>()("PostgresError", {
  step: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `test Postgres: ${this.step} failed: ${this.detail}`
  }
}

/** The tools this helper runs; a folder holding all of them is a usable Postgres. */
const tools = ["initdb", "pg_ctl", "postgres", "psql", "pg_isready"] as const

const hasTools = (dir: string): boolean => tools.every((t) => fs.existsSync(path.join(dir, t)))

/**
 * Where the Postgres binaries are: `CRUCIBLE_PG_BIN` when set (taken as given, so a wrong value is reported,
 * not silently replaced), else the newest `/usr/lib/postgresql/<version>/bin` (Debian's layout, which keeps
 * them off PATH), else the first PATH folder that has them. Undefined when none is found.
 */
export const findPgBin = (env: NodeJS.ProcessEnv = process.env): string | undefined => {
  const given = env.CRUCIBLE_PG_BIN
  if (given !== undefined && given !== "") return hasTools(given) ? given : undefined
  const debian = "/usr/lib/postgresql"
  const versions = fs.existsSync(debian)
    ? fs.readdirSync(debian).filter((v) => /^\d+(\.\d+)?$/.test(v)).sort((a, b) => Number(b) - Number(a))
    : []
  for (const v of versions) if (hasTools(path.join(debian, v, "bin"))) return path.join(debian, v, "bin")
  return (env.PATH ?? "").split(path.delimiter).find((d) => d !== "" && hasTools(d))
}

/**
 * Why the cluster tests cannot run here, or undefined when they can: no Postgres binaries were found. The
 * tests are then skipped with this reason (see {@link skipWithoutPostgres}); `.ci/run` installs Postgres.
 */
export const postgresMissing = (env: NodeJS.ProcessEnv = process.env): string | undefined => {
  if (findPgBin(env) !== undefined) return undefined
  const where = env.CRUCIBLE_PG_BIN !== undefined && env.CRUCIBLE_PG_BIN !== ""
    ? `in CRUCIBLE_PG_BIN=${env.CRUCIBLE_PG_BIN}`
    : "in /usr/lib/postgresql/*/bin or on PATH"
  return `PostgreSQL not found ${where} (needs ${tools.join(", ")}): the cluster tests are skipped. Install Debian's package (apt-get install postgresql), or point CRUCIBLE_PG_BIN at a folder holding these binaries.`
}

/**
 * For a file's `beforeEach`: skips the test with `missing` as the reason, except in CI
 * (`CI=true`), where CI installs Postgres and its absence is a failure, not something to skip.
 */
export const skipWithoutPostgres = (context: TestContext, missing: string | undefined): void => skipUnlessPresent(context, missing)

/** A running private Postgres. */
export interface PgServer {
  /** `postgres://crucible@127.0.0.1:PORT/DB` for the database asked for at start (else `postgres`). */
  readonly url: string
  readonly port: number
  /** The temporary folder: the data directory `data/`, the unix socket and the server log `log`. */
  readonly dir: string
  /** Creates a database and returns its url. */
  readonly createDatabase: (name: string) => Promise<string>
  /** Stops the server (fast shutdown: clients are disconnected, data kept) and starts it again on the same port. */
  readonly restart: () => Promise<void>
  /** Stops the server and keeps its data; `"immediate"` stops it as a crash would (recovery on the next start). */
  readonly halt: (mode?: "fast" | "immediate") => Promise<void>
  /** Starts a halted server again on the same port and waits until it accepts connections. */
  readonly start: () => Promise<void>
  /** Stops the server at once and removes its folder. */
  readonly stop: () => Promise<void>
}

/** A port the kernel just handed out on 127.0.0.1 (free unless taken again before Postgres binds it). */
const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

const isRoot = (): boolean => process.getuid?.() === 0

/** initdb, pg_ctl and postgres refuse root: as root they run as the `postgres` user. */
const command = (bin: string, tool: string, args: ReadonlyArray<string>): [string, Array<string>] =>
  isRoot() ? ["runuser", ["-u", "postgres", "--", path.join(bin, tool), ...args]] : [path.join(bin, tool), [...args]]

const run = (bin: string, step: string, tool: string, args: ReadonlyArray<string>): Promise<string> =>
  new Promise((resolve, reject) => {
    const [file, argv] = command(bin, tool, args)
    execFile(file, argv, { encoding: "utf8" }, (error, stdout, stderr) => {
      if (error === null) resolve(stdout)
      else reject(new PostgresError({ step, detail: `${[file, ...argv].join(" ")}: ${(stderr || error.message).trim()}` }))
    })
  })

/** Servers this process started and has not stopped, stopped on exit if a test crashes before `stop()`. */
const live = new Map<string, () => void>()
let exitHook = false
const stopOnExit = (dir: string, stopNow: () => void): void => {
  live.set(dir, stopNow)
  if (exitHook) return
  exitHook = true
  process.on("exit", () => {
    for (const stopNow of live.values()) stopNow()
  })
}

const quoteIdent = (name: string): string => `"${name.replaceAll("\"", "\"\"")}"`

/** Starts a fresh private Postgres; with `database`, creates it and points `url` at it. */
export const startPostgres = async (options: { readonly database?: string } = {}): Promise<PgServer> => {
  const bin = findPgBin()
  if (bin === undefined) throw new PostgresError({ step: "finding the binaries", detail: postgresMissing()! })
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-pg-"))
  const data = path.join(dir, "data")
  const log = path.join(dir, "log")
  if (isRoot()) {
    const owner = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" })
    const group = spawnSync("id", ["-g", "postgres"], { encoding: "utf8" })
    if (owner.status !== 0 || group.status !== 0) {
      fs.rmSync(dir, { recursive: true, force: true })
      throw new PostgresError({ step: "running as root", detail: "Postgres refuses root and there is no `postgres` user to run it as (Debian's postgresql package creates it)" })
    }
    fs.chownSync(dir, Number(owner.stdout), Number(group.stdout))
  }
  const port = await freePort()
  // fsync off: a test cluster need not survive a power cut, only a server crash, which the OS cache survives.
  const serverOptions = `-p ${port} -h 127.0.0.1 -k '${dir}' -c fsync=off`
  const pgCtl = (step: string, ...args: Array<string>) => run(bin, step, "pg_ctl", ["-D", data, "-l", log, "-w", "-t", "60", ...args])
  const psql = (step: string, sql: string) =>
    run(bin, step, "psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", String(port), "-U", "crucible", "-d", "postgres", "-c", sql])
  const url = (db: string) => `postgres://crucible@127.0.0.1:${port}/${encodeURIComponent(db)}`
  const ready = async (step: string) => {
    // pg_ctl -w waited on the socket; this checks the TCP listener the clients use.
    await run(bin, step, "pg_isready", ["-q", "-h", "127.0.0.1", "-p", String(port), "-t", "30"])
    await psql(step, "select 1")
  }
  const withLog = async <A>(promise: Promise<A>): Promise<A> =>
    promise.catch((e: unknown) => {
      const tail = fs.existsSync(log) ? fs.readFileSync(log, "utf8").split("\n").slice(-20).join("\n") : "(no server log)"
      throw e instanceof PostgresError ? new PostgresError({ step: e.step, detail: `${e.detail}\nserver log ${log}:\n${tail}` }) : e
    })

  const start = async () => {
    await withLog(pgCtl(`starting the server on port ${port}`, "-o", serverOptions, "start"))
    await withLog(ready(`waiting for the server on port ${port}`))
  }
  const halt = (mode: "fast" | "immediate" = "fast") => withLog(pgCtl(`stopping the server (${mode})`, "-m", mode, "stop")).then(() => undefined)
  const stopNow = () => {
    const [file, argv] = command(bin, "pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"])
    if (fs.existsSync(path.join(data, "postmaster.pid"))) spawnSync(file, argv, { stdio: "ignore" })
    fs.rmSync(dir, { recursive: true, force: true })
  }

  try {
    await run(bin, "creating the cluster (initdb)", "initdb", ["-D", data, "-A", "trust", "-U", "crucible", "-E", "UTF8", "--locale=C", "--no-sync"])
    stopOnExit(dir, stopNow)
    await start()
    if (options.database !== undefined) await psql(`creating database ${options.database}`, `CREATE DATABASE ${quoteIdent(options.database)}`)
  } catch (e) {
    live.delete(dir)
    stopNow()
    throw e
  }

  return {
    url: url(options.database ?? "postgres"),
    port,
    dir,
    createDatabase: async (name) => {
      await psql(`creating database ${name}`, `CREATE DATABASE ${quoteIdent(name)}`)
      return url(name)
    },
    restart: async () => {
      await halt("fast")
      await start()
    },
    halt,
    start,
    stop: async () => {
      live.delete(dir)
      stopNow()
    }
  }
}
