/**
 * A mergekit config compiled to the pipeline IR a user would write: one `load` per referenced
 * model, `slice`/`stack` for `slices:`, the merge stage of the method, an optional
 * `tokenizer/align`, and a `save` of a Hugging Face folder. Several documents (mergekit-multi)
 * become one DAG: `model: <name>` is an earlier document's output. Every problem is positioned in
 * the mergekit file; problems found later in the IR are mapped back by {@link Compiled.position}.
 *
 * @since 0.1.0
 */
import { Result } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { didYouMean } from "../internal/suggest.ts"
import { parseWritable } from "../tensor/DType.ts"
import { FORMAT_VERSION, type IrStage, type PipelineIR } from "../pipeline/Ir.ts"
import { isError, type Position, type Problem, sortByPosition } from "../pipeline/Problem.ts"
import * as Documents from "./Documents.ts"
import { readLayerCount, stageSlug, uniqueId } from "./Folders.ts"
import * as Keys from "./Keys.ts"
import * as Methods from "./Methods.ts"
import * as ModelRef from "./ModelRef.ts"
import * as Parameters from "./Parameters.ts"

/** @category models */
export interface Options {
  /** The config file: its folder is where relative model folders and the default output are. */
  readonly file: string
  /** The output folder (`--out`); default `merged/` beside the config. */
  readonly out?: string | undefined
  /** Where the Hugging Face cache is found (default: `process.env`). */
  readonly env?: ModelRef.Env | undefined
}

/** @category models */
export interface Compiled {
  /** The pipeline, when no problem is an error. */
  readonly ir: PipelineIR | undefined
  /** Every problem, positioned in the mergekit file, in document order. */
  readonly problems: ReadonlyArray<Problem>
  /** What the compiler accepted without effect (int8_mask…), for `crucible import` to show. */
  readonly notes: ReadonlyArray<string>
  /** A problem of the compiled pipeline (its path `stages.<id>.with.<param>`) positioned in the mergekit file. */
  readonly position: (problem: Problem) => Problem
  /** Where a stage comes from in the mergekit file. */
  readonly stagePosition: (id: string) => Position | undefined
}

type Origin = Documents.Origin
type Raw = Record<string, unknown>
const isRecord = (v: unknown): v is Raw => typeof v === "object" && v !== null && !Array.isArray(v)

/** A model fed to a merge: the stage giving it, its own parameters, and where it is written. */
interface Entry {
  readonly ref: string
  readonly stage: string
  readonly params: Raw | undefined
  readonly at: Origin
}

/** Compiles a mergekit config (its text) to pipeline IR. @category compiling */
export const compile = (text: string, options: Options): Compiled => {
  const docs = Documents.parse(text)
  const problems: Array<Problem> = [...docs.problems]
  const notes: Array<string> = []
  const stages: Array<IrStage> = []
  const origins = new Map<string, Origin>()
  const ids = new Set<string>()
  const baseDir = path.dirname(path.resolve(options.file))
  const env = options.env ?? process.env
  const fail = (code: Problem["code"], message: string, origin: Origin) => void problems.push(docs.problem(code, message, origin))
  const addStage = (id: string, uses: string, with_: Raw, origin: Origin, paramOrigins: Readonly<Record<string, Origin>> = {}) => {
    stages.push({ id, uses, with: with_, needs: [] })
    origins.set(id, origin)
    for (const [param, o] of Object.entries(paramOrigins)) origins.set(`${id}\u0000${param}`, o)
    return id
  }

  const values = docs.values
  // Document names first: a `model:` may name a document's output (mergekit-multi).
  const names = new Map<string, number>()
  values.forEach((v, i) => {
    if (isRecord(v) && typeof v.name === "string") names.set(v.name, i)
  })
  const multi = values.length > 1
  const outputs = new Map<number, string>()
  const loads = new Map<string, string>()
  const referenced = new Set<number>()
  const pendingSaves: Array<{ doc: Raw; i: number; output: string }> = []

  const modelStage = (ref: unknown, at: Origin): { ref: string; stage: string } | undefined => {
    if (typeof ref !== "string") {
      fail("InvalidPipeline", "a model reference must be a string: a folder (relative to the config) or a Hub id org/name", at)
      return undefined
    }
    const named = names.get(ref)
    if (named !== undefined) {
      referenced.add(named)
      if (named === at.doc) {
        fail("InvalidReference", `document "${ref}" uses its own output`, at)
        return undefined
      }
      return { ref, stage: docOutputId(values[named], named) }
    }
    const known = loads.get(ref)
    if (known !== undefined) return { ref, stage: known }
    const resolved = ModelRef.resolve(ref, baseDir, env)
    if (Result.isFailure(resolved)) {
      fail("InputUnreadable", resolved.failure.message, at)
      return undefined
    }
    // mergekit reads every model's config.json; the output folder takes its config from one.
    const folder = path.resolve(baseDir, resolved.success.path)
    if (!fs.existsSync(path.join(folder, "config.json"))) {
      fail("InputUnreadable", `model "${ref}" (${folder}) has no config.json: mergekit needs one for every model, and the merged Hugging Face folder takes its config from one`, at)
      return undefined
    }
    const id = uniqueId(`load_${stageSlug(resolved.success.shortName)}`, ids)
    loads.set(ref, id)
    addStage(id, "load", { path: resolved.success.path }, at)
    return { ref, stage: id }
  }

  const suffixOf = (doc: unknown, i: number) => (!multi || !isRecord(doc) || typeof doc.name !== "string" ? (multi ? `_${i}` : "") : `_${stageSlug(doc.name)}`)
  // The output stage of each document is named before it is compiled (a forward reference needs it).
  const docOutputId = (doc: unknown, i: number): string => outputs.get(i) ?? (() => {
    const id = uniqueId(`merged${suffixOf(doc, i)}`, ids)
    outputs.set(i, id)
    return id
  })()

  values.forEach((doc, i) => {
    if (doc === undefined) return
    const root: Origin = { doc: i, path: [] }
    if (!isRecord(doc)) return fail("InvalidPipeline", "a mergekit config is a map with merge_method and models or slices", root)
    checkKeys(doc, Keys.TOP, [], i)
    compileDocument(doc, i)
  })

  function checkKeys(raw: Raw, known: ReadonlyArray<string>, at: Documents.Path, doc: number) {
    for (const [key, message] of Keys.check(raw, known)) fail("UnknownKey", message, { doc, path: [...at, key], key: true })
  }

  function compileDocument(doc: Raw, i: number) {
    const at = (...p: Documents.Path): Origin => ({ doc: i, path: p })
    const methodName = doc.merge_method
    const method = typeof methodName === "string" ? Methods.get(methodName) : undefined
    if (method === undefined) {
      // The rest is still checked for unknown keys, so one run reports every typo.
      if (Array.isArray(doc.models)) doc.models.forEach((m, k) => isRecord(m) && checkKeys(m, Keys.MODEL, ["models", k], i))
      const known = Object.keys(Methods.methods)
      return fail("InvalidPipeline", `unknown merge_method ${JSON.stringify(methodName)}${typeof methodName === "string" ? didYouMean(methodName, known) : ""}; known methods: ${known.join(", ")}`, at("merge_method"))
    }
    const hasModels = doc.models !== undefined
    const hasSlices = doc.slices !== undefined
    if (hasModels === hasSlices) return fail("InvalidPipeline", "give exactly one of models: or slices:", at())
    const global = isRecord(doc.parameters) ? doc.parameters : undefined
    if (doc.parameters !== undefined && global === undefined) fail("InvalidPipeline", "parameters must be a map of parameter names to values", at("parameters"))
    const suffix = suffixOf(doc, i)
    const base = doc.base_model === undefined ? undefined : modelStage(doc.base_model, at("base_model"))
    let output: string | undefined
    if (hasModels) {
      if (!Array.isArray(doc.models) || doc.models.length === 0) return fail("InvalidPipeline", "models must be a non-empty list of { model, parameters }", at("models"))
      const entries = doc.models.flatMap((m, k): Array<Entry> => {
        const origin = at("models", k)
        if (!isRecord(m)) return fail("InvalidPipeline", "each model is a map { model, parameters }", origin), []
        checkKeys(m, Keys.MODEL, ["models", k], i)
        const s = modelStage(m.model, at("models", k, "model"))
        return s === undefined ? [] : [{ ...s, params: isRecord(m.parameters) ? m.parameters : undefined, at: origin }]
      })
      if (entries.length !== doc.models.length) return // each failed model is reported
      output = mergeOf(`merge${suffix}`, method, entries, base, [global], at, [["parameters"]])
    } else {
      output = slicesOf(doc, i, method, base, global, suffix)
    }
    if (output === undefined) return
    // A forward reference (mergekit-multi allows any order) reserved an id for this output: the output stage takes it.
    const reserved = outputs.get(i)
    const outId = reserved ?? output
    outputs.set(i, outId)
    const last = stages.findIndex((s) => s.id === output)
    if (reserved !== undefined && last !== -1 && output !== reserved) {
      stages[last] = { ...stages[last]!, id: reserved }
      origins.set(reserved, origins.get(output)!)
      for (const [k, o] of [...origins]) if (k.startsWith(`${output}\u0000`)) origins.set(`${reserved}${k.slice(output.length)}`, o)
      ids.delete(output)
    }
    compileOutput(doc, i, outId)
  }

  /** The merge stage of `entries`; with base handling as the method has it. */
  function mergeOf(id: string, method: Methods.Method, entries: ReadonlyArray<Entry>, base: { ref: string; stage: string } | undefined, levels: ReadonlyArray<Raw | undefined>, at: (...p: Documents.Path) => Origin, levelPaths: ReadonlyArray<Documents.Path>): string | undefined {
    const baseEntry = base === undefined ? undefined : entries.find((e) => e.ref === base.ref) ?? { ...base, params: undefined, at: at("base_model") }
    const others = base === undefined ? entries : entries.filter((e) => e.ref !== base.ref)
    let models: ReadonlyArray<Entry>
    const inputs: Raw = {}
    switch (method.base) {
      case "required":
      case "optional":
        if (base === undefined && method.base === "required") return fail("MissingInput", `merge_method needs base_model (${method.kind} takes task vectors from it)`, at("merge_method")), undefined
        models = others
        if (base !== undefined) inputs.base = base.stage
        break
      case "first":
        if (baseEntry === undefined) return fail("MissingInput", `merge_method needs base_model (the t = 0 end of ${method.kind})`, at("merge_method")), undefined
        models = [baseEntry, ...others]
        break
      case "listed":
        models = baseEntry === undefined || entries.includes(baseEntry) ? entries : [...entries, baseEntry]
        break
      case "none":
        models = entries
    }
    if (models.length === 0) return fail("InvalidPipeline", "no model to merge besides the base", at()), undefined
    inputs.models = models.map((m) => m.stage)
    const params: Raw = {}
    const paramOrigins: Record<string, Origin> = {}
    const levelValue = (name: string) => levels.map((l) => l?.[name])
    for (const [name, spec] of Object.entries(method.perModel)) {
      const given = models.some((m) => m.params?.[name] !== undefined) || levelValue(name).some((v) => v !== undefined)
      if (!given) continue
      const values: Array<Parameters.ModelValue> = []
      for (const m of models) {
        const settings = [m.params?.[name], ...levelValue(name)]
        const where = [m.params?.[name] !== undefined ? { ...m.at, path: [...m.at.path, "parameters", name] } : undefined, ...levelPaths.map((p) => ({ doc: m.at.doc, path: [...p, name] }))]
        const converted = settings.map((s, k) => {
          if (s === undefined) return undefined
          const c = Parameters.toModelValue(s)
          if ("error" in c) return fail("InvalidParam", `${name}: ${c.error}`, { doc: m.at.doc, path: [...(where[k]?.path ?? []), ...c.path] }), undefined
          return c.value
        })
        const value = Parameters.layered(converted) ?? spec.default
        if (!spec.rules && typeof value !== "number") {
          fail("InvalidParam", `${name}: ${method.kind} takes one number per model (no gradient or filter)`, where.find((w) => w !== undefined) ?? m.at)
          continue
        }
        values.push(value)
      }
      params[spec.as] = spec.rules ? Parameters.perModel(values) : values
      paramOrigins[spec.as] = models.map((m) => m.params?.[name] !== undefined ? { ...m.at, path: [...m.at.path, "parameters", name] } : undefined).find((o) => o !== undefined) ?? { doc: models[0]!.at.doc, path: [...(levelPaths[0] ?? []), name] }
    }
    for (const m of models) {
      for (const name of Object.keys(m.params ?? {})) {
        if (method.perModel[name] !== undefined) continue
        const origin = { ...m.at, path: [...m.at.path, "parameters", name], key: true }
        if (method.global[name] !== undefined) problems.push(docs.problem("UnknownParam", `${name} is a global parameter of ${method.kind}: mergekit ignores it per model; move it to the top-level parameters`, origin, "warning"))
        else fail("UnknownParam", `unknown parameter "${name}" for ${method.kind}${didYouMean(name, Object.keys(method.perModel))}; per-model parameters: ${Object.keys(method.perModel).join(", ") || "none"}`, origin)
      }
    }
    levels.forEach((level, k) => {
      for (const [name, setting] of Object.entries(level ?? {})) {
        if (method.perModel[name] !== undefined) continue
        const origin: Origin = { doc: models[0]!.at.doc, path: [...(levelPaths[k] ?? []), name] }
        const spec = method.global[name]
        if (spec === undefined) {
          const known = [...Object.keys(method.perModel), ...Object.keys(method.global)]
          fail("UnknownParam", `unknown parameter "${name}" for ${method.kind}${didYouMean(name, known)}; it takes: ${known.join(", ") || "none"}`, { ...origin, key: true })
          continue
        }
        if (spec.ignored !== undefined) {
          if (!notes.includes(spec.ignored)) notes.push(spec.ignored)
          continue
        }
        if (params[spec.as] !== undefined) continue // an inner level (the slice's) wins
        const converted = spec.rules ? Parameters.toModelValue(setting) : Parameters.toPlain(setting)
        if ("error" in converted) {
          fail("InvalidParam", `${name}: ${converted.error}`, { ...origin, path: [...origin.path, ...converted.path] })
          continue
        }
        params[spec.as] = spec.map === undefined ? converted.value : spec.map(converted.value as Parameters.Plain)
        paramOrigins[spec.as] = origin
      }
    })
    return addStage(uniqueId(id, ids), method.kind, { ...inputs, ...params }, at("merge_method"), paramOrigins)
  }

  function slicesOf(doc: Raw, i: number, method: Methods.Method, base: { ref: string; stage: string } | undefined, global: Raw | undefined, suffix: string): string | undefined {
    const at = (...p: Documents.Path): Origin => ({ doc: i, path: p })
    if (!Array.isArray(doc.slices) || doc.slices.length === 0) return fail("InvalidPipeline", "slices must be a non-empty list of { sources }", at("slices")), undefined
    const parts: Array<string> = []
    const full = doc.slices.length === 1 && isRecord(doc.slices[0]) && Array.isArray(doc.slices[0].sources)
    for (const [k, slice] of doc.slices.entries()) {
      if (!isRecord(slice)) return fail("InvalidPipeline", "each slice is a map { sources, parameters }", at("slices", k)), undefined
      checkKeys(slice, Keys.SLICE, ["slices", k], i)
      if (!Array.isArray(slice.sources) || slice.sources.length === 0) return fail("InvalidPipeline", "sources must be a non-empty list of { model, layer_range }", at("slices", k, "sources")), undefined
      const sliceBase = slice.base_model === undefined ? base : modelStage(slice.base_model, at("slices", k, "base_model"))
      const sources: Array<{ ref: string; stage: string; range: readonly [number, number]; params: Raw | undefined; at: Origin }> = []
      for (const [j, source] of slice.sources.entries()) {
        const origin = at("slices", k, "sources", j)
        if (!isRecord(source)) return fail("InvalidPipeline", "each source is a map { model, layer_range }", origin), undefined
        checkKeys(source, Keys.SOURCE, ["slices", k, "sources", j], i)
        const range = source.layer_range
        if (range === undefined) return fail("InvalidPipeline", "this source has no layer_range: every source of a slice needs one, [start, end) (end exclusive)", origin), undefined
        if (!Array.isArray(range) || range.length !== 2 || !range.every((n) => Number.isInteger(n) && n >= 0) || range[0] >= range[1]) {
          return fail("InvalidPipeline", "layer_range is [start, end): two integers, 0 ≤ start < end (end exclusive)", at("slices", k, "sources", j, "layer_range")), undefined
        }
        const s = modelStage(source.model, at("slices", k, "sources", j, "model"))
        if (s === undefined) continue
        sources.push({ ...s, range: [range[0], range[1]], params: isRecord(source.parameters) ? source.parameters : undefined, at: origin })
      }
      if (sources.length !== slice.sources.length) continue
      const lengths = new Set(sources.map((s) => s.range[1] - s.range[0]))
      if (lengths.size > 1) return fail("InvalidPipeline", "all sources of a slice must span the same number of layers", at("slices", k, "sources")), undefined
      const sliceParams = isRecord(slice.parameters) ? slice.parameters : undefined
      const levels = [sliceParams, global]
      const levelPaths: ReadonlyArray<Documents.Path> = [["slices", k, "parameters"], ["parameters"]]
      // One slice of whole models is the models: syntax (mergekit's own example says so): no slice stages.
      if (full && sources.every((s) => s.range[0] === 0 && !names.has(s.ref) && readLayerCount(folderOf(s.stage)) === s.range[1])) {
        return mergeOf(`merge${suffix}`, method, sources, sliceBase, levels, at, levelPaths)
      }
      const sliced = sources.map((s) => ({
        ...s,
        stage: addStage(uniqueId(`slice${suffix}_${k}_${stageSlug(s.stage.replace(/^load_/, ""))}`, ids), "slice", { model: s.stage, layers: [...s.range] }, { ...s.at, path: [...s.at.path, "layer_range"] })
      }))
      if (method.kind === "merge/passthrough") {
        if (sliced.length !== 1) return fail("InvalidPipeline", "passthrough takes one source per slice", at("slices", k, "sources")), undefined
        const scaled = sliced[0]!.params?.scale !== undefined || sliceParams?.scale !== undefined || global?.scale !== undefined
        const part = scaled ? mergeOf(`scale${suffix}_${k}`, method, sliced, undefined, levels, at, levelPaths) : sliced[0]!.stage
        if (part !== undefined) parts.push(part)
        continue
      }
      const baseSource = sliceBase === undefined ? undefined : sliced.find((s) => s.ref === sliceBase.ref)
      if (sliceBase !== undefined && baseSource === undefined) return fail("InvalidPipeline", `the base model "${sliceBase.ref}" must be one of the slice's sources`, at("slices", k, "sources")), undefined
      const part = mergeOf(doc.slices.length === 1 ? `merge${suffix}` : `merge${suffix}_${k}`, method, sliced, baseSource, levels, at, levelPaths)
      if (part !== undefined) parts.push(part)
    }
    if (parts.length !== doc.slices.length) return undefined
    return parts.length === 1 ? parts[0] : addStage(uniqueId(`stack${suffix}`, ids), "stack", { models: parts }, at("slices"))
  }

  function folderOf(stage: string): string | undefined {
    const p = stages.find((s) => s.id === stage)?.with.path
    return typeof p === "string" ? path.resolve(baseDir, p) : undefined
  }

  function compileOutput(doc: Raw, i: number, output: string) {
    const at = (...p: Documents.Path): Origin => ({ doc: i, path: p })
    for (const key of ["dtype", "out_dtype"] as const) {
      if (doc[key] !== undefined && (typeof doc[key] !== "string" || parseWritable(doc[key]) === undefined)) fail("InvalidParam", `${key}: "${String(doc[key])}" is not a dtype (use float32, float16, bfloat16)`, at(key))
    }
    if (doc.tokenizer_source !== undefined && doc.tokenizer !== undefined) fail("InvalidPipeline", "give tokenizer_source or tokenizer, not both (mergekit refuses both)", at("tokenizer"))
    else if (doc.tokenizer_source !== undefined || doc.tokenizer !== undefined) alignTokenizer(doc, i, output)
    if (typeof doc.dtype === "string" && typeof doc.out_dtype === "string" && doc.dtype !== doc.out_dtype) {
      // mergekit rounds to dtype, then to out_dtype: the merge writes dtype.
      const merge = stages.find((s) => s.id === output)
      if (merge !== undefined && merge.uses.startsWith("merge/")) stages[stages.indexOf(merge)] = { ...merge, with: { ...merge.with, out_dtype: doc.dtype } }
    }
    pendingSaves.push({ doc, i, output })
  }

  /**
   * `tokenizer_source`, or the `tokenizer:` block (TokenizerConfig: `source`, default union;
   * `tokens`; `pad_to_multiple_of`): one `tokenizer/align` stage per input of the merge (its
   * `pick`), all with the merge's inputs and the same params; the merge then takes the aligned models.
   */
  function alignTokenizer(doc: Raw, i: number, output: string) {
    const block = doc.tokenizer
    const at: Origin = { doc: i, path: [block === undefined ? "tokenizer_source" : "tokenizer"] }
    if (block !== undefined && !isRecord(block)) return fail("InvalidParam", "tokenizer is a map { source, tokens, pad_to_multiple_of }", at)
    if (isRecord(block)) checkKeys(block, Keys.TOKENIZER, ["tokenizer"], i)
    const source = isRecord(block) ? block.source ?? "union" : doc.tokenizer_source
    const sourceAt: Origin = isRecord(block) ? { doc: i, path: block.source === undefined ? ["tokenizer"] : ["tokenizer", "source"] } : at
    const index = stages.findIndex((s) => s.id === output)
    const merge = stages[index]
    if (typeof source !== "string") return fail("InvalidParam", "the tokenizer source is base, union, or a model", sourceAt)
    if (merge === undefined || !merge.uses.startsWith("merge/") || !Array.isArray(merge.with.models)) {
      return fail("InvalidParam", "a tokenizer source needs a merge of models (not slices stacked by passthrough)", at)
    }
    const models = merge.with.models as ReadonlyArray<string>
    const base = typeof merge.with.base === "string" ? merge.with.base : undefined
    // A model of the merge as the align stage names it: "base" or its index in models.
    const refOf = (ref: unknown, where: Origin): "base" | number | undefined => {
      const stage = typeof ref === "string" ? loads.get(ref) ?? modelStage(ref, where)?.stage : (modelStage(ref, where), undefined)
      if (stage === undefined) return undefined
      const k = models.indexOf(stage)
      if (k !== -1) return k
      if (stage === base) return "base"
      return fail("InvalidParam", `"${String(ref)}" is not one of the merged models`, where), undefined
    }
    let target = source
    if (source !== "base" && source !== "union") {
      const ref = refOf(source, sourceAt)
      if (ref === undefined) return
      // mergekit loads a named model's tokenizer as its folder has it: the base's too (model:base, not the stripped "base").
      target = `model:${ref}`
    } else if (source === "base" && base === undefined) {
      // mergekit's "base" without a base input of the merge: the base is models[0] (slerp) or absent.
      target = "model:0"
    }
    const extra: Raw = {}
    if (isRecord(block)) {
      if (block.pad_to_multiple_of !== undefined) {
        if (!Number.isInteger(block.pad_to_multiple_of) || (block.pad_to_multiple_of as number) < 1) fail("InvalidParam", "pad_to_multiple_of is a positive integer", { doc: i, path: ["tokenizer", "pad_to_multiple_of"] })
        else extra.pad_to_multiple_of = block.pad_to_multiple_of
      }
      if (block.tokens !== undefined && block.tokens !== null) {
        const tokens = tokensOf(block.tokens, i, refOf)
        if (tokens === undefined) return
        extra.tokens = tokens
      }
    }
    const template = typeof doc.chat_template === "string" ? { chat_template: doc.chat_template } : {}
    const shared = { models: [...models], ...(base === undefined ? {} : { base }), source: target, ...extra, ...template }
    const aligned = models.map((m) => addStage(uniqueId(`align_${m.replace(/^load_/, "")}`, ids), "tokenizer/align", { ...shared, pick: models.indexOf(m) }, at))
    const alignedBase = base === undefined ? undefined : addStage(uniqueId(`align_${base.replace(/^load_/, "")}`, ids), "tokenizer/align", { ...shared, pick: "base" }, at)
    stages[index] = { ...merge, with: { ...merge.with, models: aligned, ...(alignedBase === undefined ? {} : { base: alignedBase }) } }
  }

  /**
   * `tokenizer.tokens` as the align stage's `tokens`: mergekit's `source` is a model (its row for
   * the token), `{ kind: model_token, model, token_id | token }` or `{ kind: zero }`.
   */
  function tokensOf(raw: unknown, i: number, refOf: (ref: unknown, where: Origin) => "base" | number | undefined): Raw | undefined {
    const at = (...p: Documents.Path): Origin => ({ doc: i, path: ["tokenizer", "tokens", ...p] })
    if (!isRecord(raw)) return fail("InvalidParam", "tokens is a map of token → { source, force }", at()), undefined
    const tokens: Raw = {}
    let ok = true
    for (const [token, config] of Object.entries(raw)) {
      const bad = (message: string, ...p: Documents.Path) => { ok = false; fail("InvalidParam", `tokens[${JSON.stringify(token)}]: ${message}`, at(token, ...p)) }
      if (!isRecord(config)) { bad("a map { source, force }"); continue }
      checkKeys(config, Keys.TOKEN, ["tokenizer", "tokens", token], i)
      if (config.force !== undefined && typeof config.force !== "boolean") bad("force is true or false", "force")
      const force = config.force === true ? { force: true } : {}
      const source = config.source
      // mergekit fails on a listed token without a source (compute_default_embedding: NotImplementedError).
      if (source === undefined || source === null) { bad("source is needed: a model, { kind: model_token, model, token_id | token }, or { kind: zero }"); continue }
      if (isRecord(source)) {
        checkKeys(source, Keys.TOKEN_SOURCE, ["tokenizer", "tokens", token, "source"], i)
        if (source.kind === "zero") { tokens[token] = { source: "zero", ...force }; continue }
        if (source.kind !== "model_token") { bad(`kind "${String(source.kind)}" is model_token or zero`, "source", "kind"); continue }
        const hasId = source.token_id !== undefined && source.token_id !== null
        const hasToken = source.token !== undefined && source.token !== null
        if (hasId === hasToken) { bad("give token_id or token (one of them)", "source"); continue }
        if (hasId && (!Number.isInteger(source.token_id) || (source.token_id as number) < 0)) { bad("token_id is a non-negative integer", "source", "token_id"); continue }
        if (hasToken && typeof source.token !== "string") { bad("token is a string", "source", "token"); continue }
        const model = refOf(source.model, at(token, "source", "model"))
        if (model === undefined) { ok = false; continue }
        tokens[token] = { source: { model, ...(hasId ? { token_id: source.token_id } : { token: source.token }) }, ...force }
        continue
      }
      const model = refOf(source, at(token, "source"))
      if (model === undefined) { ok = false; continue }
      tokens[token] = { source: { model }, ...force }
    }
    return ok ? tokens : undefined
  }

  /**
   * The save's `chat_template`: with a tokenizer (tokenizer_source or tokenizer:) the align stages
   * set it; else the save does — a mergekit name or Jinja text, which `save` resolves.
   */
  function saveTemplate(doc: Raw, i: number): string | undefined {
    const template = doc.chat_template
    if (template === undefined || template === null) return undefined
    if (typeof template !== "string") return fail("InvalidParam", "chat_template is a template name (chatml, llama3, mistral, alpaca, exaone), auto, or Jinja text", { doc: i, path: ["chat_template"] }), undefined
    // mergekit's rule (ChatTemplates.resolve in strategies): a name it ships, else Jinja text (20 characters or more, with a `{`).
    const known = template === "auto" || Keys.TEMPLATE_NAMES.includes(template) || (template.length >= 20 && template.includes("{"))
    if (!known) return fail("InvalidParam", `chat_template "${template}" is not a template${didYouMean(template, Keys.TEMPLATE_NAMES)}: use one of ${Keys.TEMPLATE_NAMES.join(", ")}, auto, or Jinja text`, { doc: i, path: ["chat_template"] }), undefined
    if (doc.tokenizer_source !== undefined || doc.tokenizer !== undefined) return undefined
    // mergekit (merge.py) sets a template only on a tokenizer it builds; without one it copies the donor's files as they are.
    if (template === "auto") {
      notes.push("chat_template: auto has no effect without tokenizer_source or tokenizer (as in mergekit: the donor's tokenizer is copied as is)")
      return undefined
    }
    notes.push("chat_template without tokenizer_source: the saved tokenizer_config.json takes it (mergekit copies the donor's tokenizer as is and drops it)")
    return template
  }

  // The output: the unnamed document's (mergekit-multi writes it to --out-path); when every document is named, those no other uses.
  const unnamed = pendingSaves.filter((p) => typeof p.doc.name !== "string")
  const finals = unnamed.length > 0 ? unnamed : pendingSaves.filter((p) => !referenced.has(p.i))
  if (unnamed.length > 1) fail("InvalidPipeline", "only one document may be unnamed (it is the final merge); give the others a name:", { doc: unnamed[1]!.i, path: [] })
  const out = options.out === undefined ? "merged/" : `${path.resolve(options.out)}${path.sep}`
  for (const final of finals.slice(0, unnamed.length > 0 ? 1 : undefined)) {
    const folder = finals.length === 1 ? out : `${out}${stageSlug(String(final.doc.name))}/`
    const dtype = typeof final.doc.out_dtype === "string" ? final.doc.out_dtype : typeof final.doc.dtype === "string" ? final.doc.dtype : undefined
    const template = saveTemplate(final.doc, final.i)
    const id = uniqueId(finals.length === 1 ? "save" : `save_${stageSlug(String(final.doc.name))}`, ids)
    addStage(id, "save", { model: final.output, path: folder, ...(dtype === undefined ? {} : { dtype }), ...(template === undefined ? {} : { chat_template: template }) }, { doc: final.i, path: [] },
      { ...(dtype === undefined ? {} : { dtype: { doc: final.i, path: [typeof final.doc.out_dtype === "string" ? "out_dtype" : "dtype"] } }), ...(template === undefined ? {} : { chat_template: { doc: final.i, path: ["chat_template"] } }) })
  }

  const position = (p: Problem): Problem => {
    if (p.position !== undefined) return p
    const [, stage, , param] = p.path
    const id = typeof stage === "string" ? stage : p.stage
    const origin = (param !== undefined ? origins.get(`${id}\u0000${String(param)}`) : undefined) ?? (id === undefined ? undefined : origins.get(id))
    return docs.at(p, origin)
  }
  const sorted = sortByPosition(problems)
  const name = path.basename(options.file).replace(/\.ya?ml$/i, "")
  return {
    ir: sorted.some(isError) || stages.length === 0 ? undefined : { version: FORMAT_VERSION, name, description: `compiled from the mergekit config ${path.basename(options.file)}`, stages },
    problems: sorted,
    notes,
    position,
    stagePosition: (id) => {
      const o = origins.get(id)
      return o === undefined ? undefined : docs.locate(o)
    }
  }
}
