// The `crucible` the examples' tests run: the installed command (the bundled CLI, built by the
// root vitest setup), as a user runs it.
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../packages/runner/bin/crucible.mjs")
