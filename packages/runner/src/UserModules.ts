/**
 * Imports the user's own modules — `.ts` pipelines and modules of stage kinds — so that they
 * share this process's instances of Crucible and Effect.
 *
 * Why: a user's module imports `@crucible/core`, `@crucible/strategies`, `@crucible/runner` and
 * `effect`. Run from the installed command (one bundled file), those packages are inside the
 * bundle and nowhere on disk; run from the repository, they are the workspace's sources. Either
 * way the user's kinds and builders must be the very objects the runner checks and runs (one
 * Schema, one Effect runtime). A Node module hook (`module.registerHooks`, Node ≥ 22.15) answers
 * these bare imports from a user's file with a module that re-exports this process's own
 * namespaces; imports from anywhere else resolve as usual. TypeScript files are loaded by
 * Node's type stripping (erasable syntax; relative imports name their `.ts` extension).
 *
 * @since 0.1.0
 */
import * as Core from "@crucible/core"
import * as Strategies from "@crucible/strategies"
import { Effect } from "effect"
import * as nodeModule from "node:module"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

/**
 * The namespaces a user's module may import, by specifier. Imported when the first user module
 * is: the whole of `effect`'s index is more than the CLI needs otherwise, and the runner's own
 * API imports this module.
 */
const shared = async (): Promise<Readonly<Record<string, Readonly<Record<string, unknown>>>>> => ({
  "@crucible/core": Core,
  "@crucible/strategies": Strategies,
  "@crucible/runner": await import("./index.ts"),
  effect: await import("effect")
})

// The hook and the namespaces live on the process (a hook cannot be unregistered, and a second
// one must not stack on the first): one global slot, keyed by a registered symbol.
const SLOT = Symbol.for("crucible/UserModules/shared")
const SCHEME = "crucible-shared:"

interface Slot {
  readonly modules: Readonly<Record<string, Readonly<Record<string, unknown>>>>
}

const slot = (): Slot | undefined => (globalThis as Record<symbol, Slot | undefined>)[SLOT]

// This installation's own files: their imports resolve as usual (the bundle's folder, or the
// workspace's packages/ when running from sources).
const ownRoot = (): string => {
  const here = fileURLToPath(import.meta.url)
  return path.basename(path.dirname(here)) === "dist" ? path.dirname(here) : path.resolve(path.dirname(here), "../..")
}

/** The shared namespace for `specifier` (`effect/Schema` is the `Schema` of `effect`), if it is one. */
const namespaceFor = (modules: Slot["modules"], specifier: string): Readonly<Record<string, unknown>> | undefined => {
  const direct = modules[specifier]
  if (direct !== undefined) return direct
  const match = /^effect\/([A-Za-z]+)$/.exec(specifier)
  const sub = match === null ? undefined : modules.effect?.[match[1]!]
  return typeof sub === "object" && sub !== null ? (sub as Readonly<Record<string, unknown>>) : undefined
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/

/** The source of a module re-exporting the shared namespace `specifier`: its names are read from the live object. */
const shimSource = (specifier: string): string => {
  const ns = namespaceFor(slot()!.modules, specifier)!
  const names = Object.keys(ns).filter((n) => IDENTIFIER.test(n) && n !== "default" && !n.startsWith("__crucible"))
  // The module's own bindings must not shadow a name the namespace exports (effect exports `Symbol`).
  return [
    `const __crucibleShared = globalThis[globalThis.Symbol.for(${JSON.stringify(SLOT.description)})].modules;`,
    `const __crucibleModule = ${specifier.startsWith("effect/") ? `__crucibleShared.effect[${JSON.stringify(specifier.slice("effect/".length))}]` : `__crucibleShared[${JSON.stringify(specifier)}]`};`,
    names.length > 0 ? `export const { ${names.join(", ")} } = __crucibleModule;` : "",
    "export default __crucibleModule;"
  ].join("\n")
}

const install = async (): Promise<void> => {
  if (slot() !== undefined) return
  ;(globalThis as Record<symbol, Slot>)[SLOT] = { modules: await shared() }
  const root = pathToFileURL(ownRoot()).href
  const isUserFile = (parent: string | undefined) =>
    parent !== undefined && parent.startsWith("file:") && !parent.startsWith(root) && !parent.includes("/node_modules/")
  nodeModule.registerHooks({
    resolve: (specifier, context, next) =>
      isUserFile(context.parentURL) && namespaceFor(slot()!.modules, specifier) !== undefined
        ? { url: `${SCHEME}${specifier}`, shortCircuit: true }
        : next(specifier, context),
    load: (url, context, next) =>
      url.startsWith(SCHEME) ? { format: "module", source: shimSource(url.slice(SCHEME.length)), shortCircuit: true } : next(url, context)
  })
}

/** Why a user's module could not be imported (its own error's message). */
export interface ImportFailure {
  readonly file: string
  readonly detail: string
}

/** Imports the module at `file` (absolute) with the shared namespaces; its exports. */
export const importFile = (file: string): Effect.Effect<Readonly<Record<string, unknown>>, ImportFailure> =>
  Effect.tryPromise({
    try: async () => {
      await install()
      return (await import(pathToFileURL(file).href)) as Readonly<Record<string, unknown>>
    },
    catch: (e) => ({ file, detail: describe(e) })
  })

const describe = (e: unknown): string => {
  if (!(e instanceof Error)) return String(e)
  const code = (e as { code?: string }).code
  if (code === "ERR_MODULE_NOT_FOUND" || code === "ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX" || code === "ERR_INVALID_TYPESCRIPT_SYNTAX") return e.message.split("\n")[0]!
  // A module's own exception: its message and where it was thrown in the user's code.
  const at = e.stack?.split("\n").find((line) => /^\s+at /.test(line) && !line.includes("node:internal") && !line.includes("/node_modules/"))
  return `${e.name}: ${e.message}${at === undefined ? "" : ` (${at.trim()})`}`
}
