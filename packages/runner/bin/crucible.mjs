#!/usr/bin/env node
// The installed `crucible` command: the bundled CLI in ../dist/ (built by scripts/build-cli.mjs;
// `npm run crucible` rebuilds it when the sources change). The same file is the repository's
// packages/runner/bin/ and the published `crucible` package's bin/ (scripts/pack.mjs), both
// beside their dist/.
//
// V8's compiled code for the 4 MB bundle is cached on disk (Node's module compile cache, in
// $NODE_COMPILE_CACHE or the temporary folder): start-up 0.23 → 0.18 s after the first run.
//
// This file runs on any Node: on one older than the bundle needs (Effect 4 needs 22.19), it says
// so instead of failing somewhere inside the bundle.
import module from "node:module"

const [major, minor] = process.versions.node.split(".").map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(
    `crucible needs Node.js 22.19 or newer, but it was started by Node.js ${process.versions.node} (${process.execPath}).\n` +
      "Install Node.js 22.19+ (https://nodejs.org) and put it first on PATH, then run crucible again.\n"
  )
  process.exit(1)
}

module.enableCompileCache?.()
await import("../dist/crucible.mjs")
