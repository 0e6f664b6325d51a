// The private Postgres the cluster tests run on (test/support/Postgres.ts): it starts, takes SQL through
// @effect/sql-pg, keeps committed data across a restart and a crash, and leaves nothing behind when stopped.
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"
import * as SqlClient from "effect/sql/SqlClient"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { beforeEach, describe, expect, it } from "vitest"
import { postgresMissing, skipWithoutPostgres, startPostgres } from "../support/Postgres.ts"

// Without Postgres every test here is skipped with the reason, also printed once; in CI it fails (PostgresSkip.test.ts).
const missing = postgresMissing()
if (missing !== undefined) console.warn(missing)
beforeEach((context) => skipWithoutPostgres(context, missing))

/** Runs `f` with a fresh connection pool to `url`, closed afterwards. */
const withSql = <A>(url: string, f: (sql: SqlClient.SqlClient) => Effect.Effect<A, unknown>): Promise<A> =>
  Effect.runPromise(
    Effect.gen(function* () {
      return yield* f(yield* SqlClient.SqlClient)
    }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 2 })))
  )

const names = (url: string) =>
  withSql(url, (sql) => sql<{ name: string }>`SELECT name FROM runs ORDER BY id`.pipe(Effect.map((rows) => rows.map((r) => r.name))))

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
const listening = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1")
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

describe("a private Postgres", () => {
  it("starts on 127.0.0.1, keeps committed rows across a restart and a crash, and is gone after stop", async () => {
    const pg = await startPostgres({ database: "crucible_test" })
    try {
      expect(pg.url).toBe(`postgres://crucible@127.0.0.1:${pg.port}/crucible_test`)
      expect(fs.existsSync(path.join(pg.dir, "data", "PG_VERSION"))).toBe(true)

      const db = await withSql(pg.url, (sql) => sql<{ db: string }>`SELECT current_database() AS db`)
      expect(db).toEqual([{ db: "crucible_test" }])
      await withSql(pg.url, (sql) =>
        Effect.gen(function* () {
          yield* sql`CREATE TABLE runs (id serial PRIMARY KEY, name text NOT NULL)`
          yield* sql`INSERT INTO runs ${sql.insert([{ name: "first" }, { name: "second" }])}`
        }))

      await pg.restart()
      expect(await names(pg.url)).toEqual(["first", "second"])

      // A crash (immediate stop, no checkpoint) loses no committed row: recovery replays the WAL.
      await withSql(pg.url, (sql) => sql`INSERT INTO runs (name) VALUES ('third')`)
      await pg.halt("immediate")
      expect(await listening(pg.port)).toBe(false)
      await pg.start()
      expect(await names(pg.url)).toEqual(["first", "second", "third"])

      const other = await pg.createDatabase("other db")
      expect(other).toBe(`postgres://crucible@127.0.0.1:${pg.port}/other%20db`)
      expect(await withSql(other, (sql) => sql<{ db: string }>`SELECT current_database() AS db`)).toEqual([{ db: "other db" }])
    } finally {
      await pg.stop()
    }
    expect(fs.existsSync(pg.dir)).toBe(false)
    expect(await listening(pg.port)).toBe(false)
  })

  it("gives each call its own server", async () => {
    const [a, b] = await Promise.all([startPostgres(), startPostgres()])
    try {
      expect(a.port).not.toBe(b.port)
      expect(a.dir).not.toBe(b.dir)
      expect(a.url).toBe(`postgres://crucible@127.0.0.1:${a.port}/postgres`)
      await withSql(a.url, (sql) => sql`CREATE TABLE only_in_a (x int)`)
      const inB = await withSql(b.url, (sql) => sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'only_in_a'`)
      expect(inB).toEqual([{ n: 0 }])
    } finally {
      await Promise.all([a.stop(), b.stop()])
    }
  })
})
