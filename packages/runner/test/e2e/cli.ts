// Runs the real `crucible` CLI in a child process under the same Node (22) as the tests: the
// installed command (bin/crucible.mjs, the bundle the root vitest setup builds).
import { spawn, spawnSync } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export const cliMain = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../bin/crucible.mjs")

export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `crucible args…` to completion. */
export const crucible = (args: ReadonlyArray<string>, options: { readonly cwd?: string; readonly env?: Record<string, string> } = {}): CliResult => {
  const r = spawnSync(process.execPath, [cliMain, ...args], { encoding: "utf8", cwd: options.cwd, env: { ...process.env, CI: "1", ...options.env }, timeout: 120_000 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** Starts `crucible args…` and returns the child (for signals and streaming output). */
export const startCrucible = (args: ReadonlyArray<string>, options: { readonly cwd?: string; readonly env?: Record<string, string> } = {}) =>
  spawn(process.execPath, [cliMain, ...args], { cwd: options.cwd, env: { ...process.env, CI: "1", ...options.env }, stdio: ["ignore", "pipe", "pipe"] })

/** Runs `crucible args…` without blocking this process's event loop (a receiver in this process must answer). */
export const crucibleAsync = (args: ReadonlyArray<string>, options: { readonly cwd?: string; readonly env?: Record<string, string> } = {}): Promise<CliResult> =>
  new Promise((resolve) => {
    const child = startCrucible(args, options)
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()))
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()))
    child.on("exit", (code) => resolve({ code, stdout, stderr }))
  })
