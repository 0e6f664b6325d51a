/**
 * Where a pipeline comes from, made one thing for the runner: a YAML file, a TypeScript (or
 * JavaScript) module whose default export is a built pipeline, a `Builder` or its IR in the
 * caller's hands. Each is validated with the same registry — the built-in kinds, the caller's,
 * the `--kinds` modules, the file's own `kinds:` modules, and the kinds a builder used — and, when
 * asked (`validate`, `run`), preflighted from its inputs' headers (`Preflight.ts`), every problem
 * reported at once; it becomes the same `LoadedPipeline`: plan, run, manifest, trace and
 * dashboard cannot tell them apart.
 *
 * @since 0.1.0
 */
import { Builder, type Ir, Limits, Mergekit, PipelineError, Problem, Registry, type Stage, Validate, Yaml } from "@crucible/core"
import { builtinRegistry } from "@crucible/strategies"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as KindModules from "./KindModules.ts"
import * as Preflight from "./Preflight.ts"
import * as UserModules from "./UserModules.ts"

/** A pipeline as the runner accepts it: a file (YAML, `.ts`, `.mts`, `.js`, `.mjs`), a builder, or an IR. @category models */
export type PipelineInput = string | Builder.PipelineBuilder | Ir.PipelineIR

/** @category models */
export interface LoadOptions {
  /** Extra stage kinds, added to the built-in ones. */
  readonly kinds?: Registry.Registry | undefined
  /** Modules of stage kinds (the CLI's `--kinds`), relative to the working directory. */
  readonly kindModules?: ReadonlyArray<string> | undefined
  /** For a builder or an IR: the folder its relative paths resolve against (default: the working directory). */
  readonly baseDir?: string | undefined
  /** Also check what the inputs' headers say (files readable, shapes that agree…), reading no tensor data (default: false). */
  readonly preflight?: boolean | undefined
  /** For a mergekit config: the folder its merged model is written to (`--out`; default `merged/` beside the config). */
  readonly out?: string | undefined
}

/** A validated pipeline, the registry it was validated with, and where its stages are written. @category models */
export interface LoadedPipeline extends Yaml.LoadedPipeline {
  readonly format: "yaml" | "module" | "code"
  readonly registry: Registry.Registry
  /** `file:line:col` of each stage's definition, where the source has one. */
  readonly positions: ReadonlyMap<string, string>
  /** Problems that do not stop it (a filter that matches no tensor), positioned: print them. */
  readonly warnings: ReadonlyArray<Problem.Problem>
}

/** The errors of loading a pipeline. @category errors */
export type LoadError = PipelineError.PipelineInvalid | PipelineError.PipelineUnreadable | KindModules.KindModuleError

const MODULE_EXTENSIONS = new Set([".ts", ".mts", ".js", ".mjs"])

/** Whether `file` is a pipeline module (rather than YAML), by its extension. */
export const isModule = (file: string): boolean => MODULE_EXTENSIONS.has(path.extname(file).toLowerCase())

/** Loads and validates a pipeline from any of its sources. */
export const load = (input: PipelineInput, options: LoadOptions = {}): Effect.Effect<LoadedPipeline, LoadError> =>
  Effect.gen(function* () {
    const base = yield* baseRegistry(options)
    if (typeof input !== "string") {
      const ir = Builder.isBuilder(input) ? input.build() : input
      return yield* fromIr(ir, Builder.isBuilder(input) ? input.kinds() : [], base, {
        format: "code", file: "<code>", baseDir: path.resolve(options.baseDir ?? "."), text: JSON.stringify(ir), preflight: options.preflight === true
      })
    }
    const preflight = options.preflight === true
    return yield* (isModule(input) ? fromModule(input, base, preflight) : fromYaml(input, base, preflight, options.out))
  })

/** The built-in kinds, the caller's, and those of the `--kinds` modules (a failed module, or a name clash, fails). */
export const baseRegistry = (options: Pick<LoadOptions, "kinds" | "kindModules">): Effect.Effect<Registry.Registry, KindModules.KindModuleError> =>
  Effect.gen(function* () {
    const withCallers = options.kinds === undefined ? builtinRegistry : Registry.extend(builtinRegistry, options.kinds.kinds.values())
    if (options.kindModules === undefined || options.kindModules.length === 0) return withCallers
    const loaded = yield* KindModules.load(options.kindModules, process.cwd(), withCallers)
    return Registry.extend(withCallers, loaded.kinds.values())
  })

const readText = (file: string) =>
  Effect.try({ try: () => fs.readFileSync(file, "utf8"), catch: (e) => new PipelineError.PipelineUnreadable({ file, detail: (e as Error).message }) })

/** The parsing limits: the defaults, raised by `CRUCIBLE_PIPELINE_LIMITS` (read when a pipeline is loaded). */
const limitsFor = (file: string): Effect.Effect<Limits.Limits, PipelineError.PipelineUnreadable> => {
  const read = Limits.fromSpec(process.env[Limits.ENV])
  return "limits" in read ? Effect.succeed(read.limits) : Effect.fail(new PipelineError.PipelineUnreadable({ file, detail: read.error }))
}

/** A file over the size limit is a problem before a byte of it is read. */
const checkSize = (file: string, limits: Limits.Limits): Effect.Effect<void, PipelineError.PipelineInvalid> => {
  const size = fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0
  if (size <= limits.bytes) return Effect.void
  const message = `the file is ${size} bytes; the limit is ${limits.bytes}; ${Limits.howToRaise("bytes")}`
  return Effect.fail(new PipelineError.PipelineInvalid({ file, problems: [new Problem.Problem({ code: "LimitExceeded", message, path: [], position: { line: 1, col: 1 } })] }))
}

/**
 * A YAML file: its `kinds:` modules are loaded one by one, so each failure is a problem at its own
 * line. Parsing is synchronous (linear, and bounded by the limits); the fiber yields after each
 * parse, so a SIGINT or SIGTERM that arrived during one stops the command there.
 */
const fromYaml = (file: string, base: Registry.Registry, preflight: boolean, out?: string): Effect.Effect<LoadedPipeline, LoadError> =>
  Effect.gen(function* () {
    const limits = yield* limitsFor(file)
    yield* checkSize(file, limits)
    const text = yield* readText(file)
    const baseDir = path.dirname(path.resolve(file))
    // A mergekit config (a top-level merge_method) is compiled; its problems stay in its own lines.
    if (Mergekit.isMergekit(text)) return yield* fromMergekit(file, text, baseDir, base, preflight, out)
    const parsed = Yaml.parse(text, limits)
    yield* Effect.yieldNow
    let registry = base
    const problems: Array<Problem.Problem> = []
    for (const [i, module] of (parsed.ir?.kinds ?? []).entries()) {
      const loaded = yield* Effect.result(KindModules.load([module], baseDir, registry))
      if (loaded._tag === "Success") registry = Registry.extend(registry, loaded.success.kinds.values())
      else problems.push(new Problem.Problem({ code: loaded.failure.reason === "Clash" ? "KindClash" : "KindModule", message: loaded.failure.message, path: ["kinds", i] }))
    }
    const checked = Yaml.check(text, registry, problems, limits, parsed)
    yield* Effect.yieldNow
    const found = yield* preflightOf(checked.pipeline, baseDir, preflight)
    const all = Problem.sortByPosition([...checked.problems, ...found.map(checked.position)])
    if (checked.pipeline === undefined || all.some(Problem.isError)) return yield* new PipelineError.PipelineInvalid({ file, problems: all })
    const pipeline = checked.pipeline
    return { format: "yaml" as const, file, baseDir, text, pipeline, registry, positions: positionsOf(file, pipeline, (id) => checked.locate(["stages", id], { key: true })), warnings: all }
  })

/** A mergekit config, compiled to IR and validated; every problem positioned in the mergekit file. */
const fromMergekit = (file: string, text: string, baseDir: string, registry: Registry.Registry, preflight: boolean, out: string | undefined): Effect.Effect<LoadedPipeline, LoadError> =>
  Effect.gen(function* () {
    const compiled = Mergekit.compile(text, { file, out })
    const ir = compiled.ir
    if (ir === undefined) return yield* new PipelineError.PipelineInvalid({ file, problems: compiled.problems })
    const result = Validate.validate(ir, registry)
    const found = yield* preflightOf(result.pipeline, baseDir, preflight)
    const all = Problem.sortByPosition([...compiled.problems, ...[...result.problems, ...found].map(compiled.position)])
    if (result._tag === "Invalid" || all.some(Problem.isError)) return yield* new PipelineError.PipelineInvalid({ file, problems: all })
    const pipeline = result.pipeline
    return { format: "yaml" as const, file, baseDir, text, pipeline, registry, positions: positionsOf(file, pipeline, compiled.stagePosition), warnings: all }
  })

/** A module whose default export is a builder or an IR. */
const fromModule = (file: string, base: Registry.Registry, preflight: boolean): Effect.Effect<LoadedPipeline, LoadError> =>
  Effect.gen(function* () {
    const text = yield* readText(file)
    const absolute = path.resolve(file)
    const unreadable = (detail: string) => new PipelineError.PipelineUnreadable({ file, detail })
    const exports = yield* UserModules.importFile(absolute).pipe(Effect.mapError((e) => unreadable(`importing it failed: ${e.detail}`)))
    const value = exports.default
    const context = { format: "module" as const, file, baseDir: path.dirname(absolute), text, preflight }
    if (Builder.isBuilder(value)) return yield* fromIr(value.build(), value.kinds(), base, context)
    if (isIr(value)) return yield* fromIr(value, [], base, context)
    return yield* unreadable(`its default export must be a pipeline: \`export default p\` where \`const p = Builder.make("name")\` (or \`p.build()\`); it is ${describeValue(value)}`)
  })

/** Validates an IR with the registry, the kinds a builder used, and the IR's own `kinds` modules. */
const fromIr = (
  ir: Ir.PipelineIR,
  used: ReadonlyArray<Stage.AnyStageKind>,
  base: Registry.Registry,
  context: { readonly format: LoadedPipeline["format"]; readonly file: string; readonly baseDir: string; readonly text: string; readonly preflight: boolean }
): Effect.Effect<LoadedPipeline, LoadError> =>
  Effect.gen(function* () {
    const invalid = (problems: ReadonlyArray<Problem.Problem>) =>
      new PipelineError.PipelineInvalid({ ...(context.file === "<code>" ? {} : { file: context.file }), problems: problems.map((p) => positioned(p, context)) })
    const clashes = used.flatMap((kind) => {
      const known = Registry.get(base, kind.kind)
      return known === undefined || known === kind ? [] : [new Problem.Problem({
        code: "KindClash",
        message: `the pipeline uses its own stage kind named "${kind.kind}", which is a built-in kind; give it another name`,
        path: []
      })]
    })
    if (clashes.length > 0) return yield* invalid(clashes)
    let registry = Registry.extend(base, used.filter((k) => Registry.get(base, k.kind) === undefined))
    if (ir.kinds !== undefined && ir.kinds.length > 0) registry = Registry.extend(registry, (yield* KindModules.load(ir.kinds, context.baseDir, registry)).kinds.values())
    const result = Validate.validate(ir, registry)
    const problems = [...result.problems, ...yield* preflightOf(result.pipeline, context.baseDir, context.preflight)]
    if (problems.some(Problem.isError)) return yield* invalid(problems)
    const pipeline = result.pipeline
    const positions = positionsOf(context.file, pipeline, (id) => stageOffset(context, id))
    const { preflight: _, ...source } = context
    return { ...source, pipeline, registry, positions, warnings: problems.map((p) => positioned(p, context)) }
  })

/** The preflight's problems of the stages that passed validation, when asked for. */
const preflightOf = (pipeline: Validate.ResolvedPipeline | undefined, baseDir: string, enabled: boolean): Effect.Effect<ReadonlyArray<Problem.Problem>> =>
  !enabled || pipeline === undefined || pipeline.stages.length === 0 ? Effect.succeed([]) : Preflight.run(pipeline, { baseDir })

const isIr = (value: unknown): value is Ir.PipelineIR =>
  typeof value === "object" && value !== null && (value as Ir.PipelineIR).version === 1 &&
  typeof (value as Ir.PipelineIR).name === "string" && Array.isArray((value as Ir.PipelineIR).stages)

const describeValue = (value: unknown): string =>
  value === undefined ? "missing (the module has no default export)" : value === null ? "null" : Array.isArray(value) ? "an array" : `a ${typeof value}`

/** Where `p.stage("id", …)` is written in a module's source (1-based), for messages and the dashboard. */
const stageOffset = (context: { readonly format: string; readonly text: string }, id: string): Problem.Position | undefined => {
  if (context.format !== "module") return undefined
  const match = new RegExp(`\\.stage\\(\\s*(["'\`])${id.replace(/[-]/g, "\\-")}\\1`).exec(context.text)
  if (match === null) return undefined
  const before = context.text.slice(0, match.index + match[0].indexOf(match[1]!))
  const line = before.split("\n").length
  return { line, col: before.length - before.lastIndexOf("\n") }
}

/** A problem of a module's pipeline, at the stage's line with a code frame when the source shows it. */
const positioned = (p: Problem.Problem, context: { readonly format: string; readonly text: string }): Problem.Problem => {
  const at = p.stage === undefined ? undefined : stageOffset(context, p.stage)
  return at === undefined ? p : new Problem.Problem({ ...p, position: at, frame: Problem.codeFrame(context.text, at) })
}

/** `file:line:col` of every stage whose definition `at` finds in the source. */
const positionsOf = (file: string, pipeline: Validate.ResolvedPipeline, at: (id: string) => Problem.Position | undefined): ReadonlyMap<string, string> =>
  new Map(pipeline.stages.flatMap((s) => {
    const position = at(s.id)
    return position === undefined ? [] : [[s.id, `${file}:${position.line}:${position.col}`] as const]
  }))
