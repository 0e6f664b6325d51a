// A fresh folder under the system's temporary folder for the running test, removed when the test
// ends, passed or failed (`keepIfFailed` in e2e/soak.ts keeps a failed soak's folder instead).
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { onTestFinished } from "vitest"

/** A new folder named `prefix` + random characters; call it inside a test. */
export const tempDir = (prefix: string): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}
