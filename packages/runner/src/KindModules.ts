/**
 * A user's own stage kinds, from modules: a pipeline's `kinds: [./my-kinds.ts]` or the CLI's
 * `--kinds FILE`. Every export of such a module that is a `Stage.define` value is a kind; the
 * result is a registry the runner adds to the built-in one, so validation, plan, cache keys,
 * traces and the dashboard treat the user's kinds as they treat Crucible's.
 *
 * A name may be given once: a kind whose name is a built-in's (unless it is that very kind,
 * re-exported) or another module's is an error naming both, never a silent replacement.
 *
 * @since 0.1.0
 */
import { Registry, Stage } from "@crucible/core"
import { builtinRegistry } from "@crucible/strategies"
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as UserModules from "./UserModules.ts"

/** A kinds module could not be used. @category errors */
export class KindModuleError extends Schema.TaggedError<KindModuleError>()("KindModuleError", {
  /** The module as the user named it. */
  module: Schema.String,
  /** Its absolute path. */
  file: Schema.String,
  /** `NotFound`: no such file; `ImportFailed`: importing it threw; `NoKinds`: it exports no kind; `Clash`: a kind's name is taken. */
  reason: Schema.Literals(["NotFound", "ImportFailed", "NoKinds", "Clash"]),
  detail: Schema.String
}) {
  override get message() {
    return `kinds module ${this.module}: ${this.detail}`
  }
}

/** A kind and the module it came from. */
interface Loaded {
  readonly kind: Stage.AnyStageKind
  readonly module: string
}

/**
 * Imports `modules` (paths relative to `baseDir`, or absolute) and returns a registry of the
 * kinds they export, checked against `base` (the built-in kinds by default) for name clashes.
 */
export const load = (
  modules: ReadonlyArray<string>,
  baseDir: string,
  base: Registry.Registry = builtinRegistry
): Effect.Effect<Registry.Registry, KindModuleError> =>
  Effect.gen(function* () {
    const found = new Map<string, Loaded>()
    for (const module of modules) {
      for (const kind of yield* kindsOf(module, baseDir)) {
        const fail = (detail: string) => new KindModuleError({ module, file: path.resolve(baseDir, module), reason: "Clash", detail })
        const builtin = Registry.get(base, kind.kind)
        if (builtin !== undefined && builtin !== kind) {
          return yield* fail(`it exports a stage kind named "${kind.kind}", which is a built-in kind; give yours another name (e.g. "user/${kind.kind.split("/").at(-1)}")`)
        }
        const other = found.get(kind.kind)
        if (other !== undefined && other.kind !== kind) {
          return yield* fail(`it exports a stage kind named "${kind.kind}", and so does ${other.module}; kind names must be unique`)
        }
        if (builtin === undefined) found.set(kind.kind, { kind, module })
      }
    }
    return Registry.make([...found.values()].map((l) => l.kind))
  })

/** The kinds `module` exports, each once (a kind exported under two names is one kind). */
const kindsOf = (module: string, baseDir: string): Effect.Effect<ReadonlyArray<Stage.AnyStageKind>, KindModuleError> =>
  Effect.gen(function* () {
    const file = path.resolve(baseDir, module)
    const fail = (reason: KindModuleError["reason"], detail: string) => new KindModuleError({ module, file, reason, detail })
    if (!fs.existsSync(file)) return yield* fail("NotFound", `no such file: ${file}`)
    const exports = yield* UserModules.importFile(file).pipe(Effect.mapError((e) => fail("ImportFailed", `importing it failed: ${e.detail}`)))
    const kinds = [...new Set(Object.values(exports).filter(Stage.isStageKind))]
    if (kinds.length === 0) {
      return yield* fail("NoKinds", `it exports no stage kind (export the values Stage.define returns, e.g. \`export const MyKind = Stage.define({ … })\`); its exports: ${Object.keys(exports).join(", ") || "none"}`)
    }
    return kinds
  })
