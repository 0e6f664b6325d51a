// Without Postgres, Postgres.test.ts is skipped with the reason outside CI and fails in CI: vitest runs it in
// child processes with CRUCIBLE_PG_BIN pointing at a folder that does not exist, as on a machine without Postgres.
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import { postgresMissing } from "../support/Postgres.ts"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..")
const missingBin = "/nonexistent/pg-bin"

interface Outcome { readonly code: number | null; readonly output: string; readonly report: { numPassedTests: number; numFailedTests: number; numFailedTestSuites: number; numPendingTests: number } }

/** Runs Postgres.test.ts in a vitest of its own, without Postgres, with `CI` set to `ci`. */
const runWithout = async (ci: string): Promise<Outcome> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-pg-skip-"))
  try {
    const report = path.join(dir, "report.json")
    // Not this run's own VITEST_* variables: the child is a run of its own.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("VITEST")))
    const child = spawn(
      process.execPath,
      [path.join(root, "node_modules/vitest/vitest.mjs"), "run", "packages/runner/test/cluster/Postgres.test.ts", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`],
      { cwd: root, env: { ...env, CRUCIBLE_PG_BIN: missingBin, CI: ci }, stdio: ["ignore", "pipe", "pipe"] }
    )
    let output = ""
    child.stdout.on("data", (c: Buffer) => (output += c.toString()))
    child.stderr.on("data", (c: Buffer) => (output += c.toString()))
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve))
    return { code, output, report: JSON.parse(fs.readFileSync(report, "utf8")) }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

describe("the cluster tests without Postgres", () => {
  const reason = postgresMissing({ CRUCIBLE_PG_BIN: missingBin })

  it("names the missing binaries and how to install them", () => {
    expect(reason).toBe(
      `PostgreSQL not found in CRUCIBLE_PG_BIN=${missingBin} (needs initdb, pg_ctl, postgres, psql, pg_isready): the cluster tests are skipped. Install Debian's package (apt-get install postgresql), or point CRUCIBLE_PG_BIN at a folder holding these binaries.`
    )
  })

  it("are skipped, each with the reason, outside CI, and fail in CI", async () => {
    const [local, ci] = await Promise.all([runWithout("false"), runWithout("true")])

    expect(local.code, local.output).toBe(0)
    // Printed in the run's output, where a developer sees it.
    expect(local.output).toContain(reason)
    expect(local.report.numFailedTests + local.report.numFailedTestSuites).toBe(0)
    expect(local.report.numPassedTests).toBe(0)
    expect(local.report.numPendingTests).toBeGreaterThanOrEqual(2)

    // CI installs Postgres (.ci/run), so there its absence is a failure.
    expect(ci.code, ci.output).not.toBe(0)
    expect(ci.output).toContain("CI installs it (.ci/run)")
    expect(ci.report.numPassedTests).toBe(0)
    expect(ci.report.numFailedTests).toBeGreaterThanOrEqual(2)
  }, 120_000)
})
