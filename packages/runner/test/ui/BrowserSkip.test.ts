// Without chromium, Browser.test.ts is skipped with the reason — not failed: vitest runs it in a
// child process with CRUCIBLE_CHROMIUM pointing at a file that does not exist, as on a machine
// without chromium.
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import { missingChromium } from "./browser.ts"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..")

describe("the browser tests without chromium", () => {
  it("are skipped, each with the reason, which names the missing binary and how to install it", async () => {
    const missing = "/nonexistent/chromium"
    const reason = missingChromium(missing)
    expect(reason).toBe(`chromium not found at ${missing}: the dashboard's browser tests are skipped. Install Debian's package (apt-get install chromium), or point CRUCIBLE_CHROMIUM at a Chromium/Chrome binary.`)

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-browser-skip-"))
    try {
      const report = path.join(dir, "report.json")
      // Not this run's own VITEST_* variables: the child is a run of its own.
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("VITEST")))
      const child = spawn(
        process.execPath,
        [path.join(root, "node_modules/vitest/vitest.mjs"), "run", "packages/runner/test/ui/Browser.test.ts", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`],
        { cwd: root, env: { ...env, CRUCIBLE_CHROMIUM: missing, CI: "1" }, stdio: ["ignore", "pipe", "pipe"] }
      )
      let output = ""
      child.stdout.on("data", (c: Buffer) => (output += c.toString()))
      child.stderr.on("data", (c: Buffer) => (output += c.toString()))
      const code = await new Promise<number | null>((resolve) => child.on("exit", resolve))
      expect(code, output).toBe(0)
      // Printed once in the run's output, where a developer sees it.
      expect(output).toContain(reason)
      const r = JSON.parse(fs.readFileSync(report, "utf8"))
      expect(r.numFailedTests + r.numFailedTestSuites).toBe(0)
      expect(r.numPassedTests).toBe(0)
      expect(r.numPendingTests).toBeGreaterThanOrEqual(3)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)
})
