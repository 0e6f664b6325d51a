// The CLI tests spawn the bundled `crucible` (what users run): build it first when a source is
// newer than it (scripts/build-cli.mjs; about a second).
import { ensureBuilt } from "./scripts/build-cli.mjs"

export default async function setup(): Promise<void> {
  await ensureBuilt()
}
