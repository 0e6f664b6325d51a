#!/usr/bin/env node
// The installed `crucible` command: the bundled CLI (packages/runner/dist, built by
// scripts/build-cli.mjs; `npm run crucible` rebuilds it when the sources change).
//
// V8's compiled code for the 4.6 MB bundle is cached on disk (Node's module compile cache, in
// $NODE_COMPILE_CACHE or the temporary folder): start-up 0.23 → 0.18 s after the first run.
import module from "node:module"

module.enableCompileCache?.()
await import("../dist/crucible.mjs")
