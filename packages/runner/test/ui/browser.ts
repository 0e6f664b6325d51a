// A real browser for the dashboard tests: Debian's chromium driven by playwright-core.
import { type BrowserContext, chromium } from "playwright-core"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

/** Where chromium is expected (CRUCIBLE_CHROMIUM overrides). */
export const chromiumPath = process.env.CRUCIBLE_CHROMIUM ?? "/usr/bin/chromium"

/** Where the tests leave their screenshots (outside the repository). */
export const screenshotDir = path.join(os.tmpdir(), "crucible-ui-screenshots")

const flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]

/**
 * Why the browser tests cannot run here, or undefined when they can: chromium is not at
 * `executable`. The tests are then skipped with this reason, so `npm test` passes on a machine
 * without chromium and says what it did not test; `.ci/run` installs chromium, so CI runs them.
 */
export const missingChromium = (executable = chromiumPath): string | undefined =>
  fs.existsSync(executable)
    ? undefined
    : `chromium not found at ${executable}: the dashboard's browser tests are skipped. Install Debian's package (apt-get install chromium), or point CRUCIBLE_CHROMIUM at a Chromium/Chrome binary.`

/** Starts chromium with a fresh profile; fails with {@link missingChromium}'s reason when it is not there. */
export const launch = async (executable = chromiumPath): Promise<{ readonly context: BrowserContext; readonly close: () => Promise<void> }> => {
  const missing = missingChromium(executable)
  if (missing !== undefined) throw new Error(missing)
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-chromium-"))
  const context = await chromium.launchPersistentContext(profile, { executablePath: executable, headless: true, args: flags, viewport: { width: 1280, height: 900 } })
  return {
    context,
    close: async () => {
      await context.close()
      fs.rmSync(profile, { recursive: true, force: true })
    }
  }
}

/** Saves a full-page screenshot as `<name>.png` in {@link screenshotDir}; returns its path. */
export const screenshot = async (page: import("playwright-core").Page, name: string): Promise<string> => {
  fs.mkdirSync(screenshotDir, { recursive: true })
  const file = path.join(screenshotDir, `${name}.png`)
  await page.screenshot({ path: file, fullPage: true })
  return file
}
