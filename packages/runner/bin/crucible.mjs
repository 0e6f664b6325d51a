#!/usr/bin/env node
// The installed `crucible` command: the bundled CLI (packages/runner/dist, built by
// scripts/build-cli.mjs; `npm run crucible` rebuilds it when the sources change).
await import("../dist/crucible.mjs")
