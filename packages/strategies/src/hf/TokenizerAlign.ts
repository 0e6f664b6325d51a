/**
 * `tokenizer/align`: mergekit's `tokenizer_source` (`base`, a model, `union`) as a stage. It builds
 * the target vocabulary from the inputs' tokenizers (see `Tokenizer.ts`) and outputs one of the
 * inputs (`pick`) with its embedding and lm_head rows permuted to it: row k is the model's row for
 * token k's string, and a token the model lacks gets mergekit's default (see `EmbeddingRows.ts`).
 * A mergekit merge with `tokenizer_source` compiles to one such stage per model, all with the same
 * inputs and `source`, feeding the merge.
 *
 * The output's `provenance.tokenizer` is a folder this stage writes, `<runDir>/<stage id>-tokenizer/`,
 * with the target tokenizer's files (and `chat_template` when given): an HF `save` of the model, or
 * of a merge of aligned models, takes its tokenizer files from there (its config.json still comes
 * from the donor, with `vocab_size` set from the embedding's rows).
 *
 * @since 0.1.0
 */
import { AtomicFile, DType, Lineage, type Model, Port, Stage, TensorRef } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Architecture from "./Architecture.ts"
import * as ChatTemplates from "./ChatTemplates.ts"
import * as EmbeddingRows from "./EmbeddingRows.ts"
import * as Tokenizer from "./Tokenizer.ts"

/** The inputs cannot be aligned as asked. @category errors */
export class TokenizerAlignError extends Schema.TaggedError<TokenizerAlignError>()("TokenizerAlignError", {
  stage: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `stage "${this.stage}": ${this.detail}`
  }
}

const KIND = "tokenizer/align"
/** Rows this close are read together (reading a few unneeded rows beats one more read). */
const RUN_GAP = 16
const SOURCE = /^(base|union|model:.+)$/
const TOKENIZER_FILES = new Set(["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "added_tokens.json", "vocab.json", "merges.txt", "vocab.txt", "spiece.model", "sentencepiece.bpe.model", "chat_template.jinja", "chat_template.json"])

const folderOf = (model: Model.Model): string | undefined => model.provenance?.donor ?? model.provenance?.folders[0]

/** The `source` param's folder or index, for `model:<…>`. */
const sourceModel = (source: string): string | undefined => (source.startsWith("model:") ? source.slice("model:".length) : undefined)

const ModelRef = Schema.Union([Schema.Literal("base"), Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))])

/** mergekit's `tokenizer.tokens` entry: where a token's default row comes from, and whether every model takes it. */
const TokenConfig = Schema.Struct({
  source: Schema.Union([
    Schema.Literal("zero"),
    Schema.Struct({
      model: ModelRef.annotate({ description: "base, or an index in models" }),
      token_id: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)).annotate({ description: "that model's row with this id" })),
      token: Schema.optional(Schema.String.annotate({ description: "that model's row for this token" }))
    })
  ]),
  force: Schema.Boolean.annotate({ description: "every model takes this row, even those that have the token" }).pipe(Stage.withDefault(false))
})

interface Participant {
  readonly model: Model.Model
  readonly folder: string
  readonly tokenizer: Tokenizer.Tokenizer
  /** The tokenizer differs from its folder's files (the base, stripped of unused ids). */
  readonly stripped: boolean
  readonly embedding: TensorRef.TensorRef
  readonly lmHead: TensorRef.TensorRef | undefined
  readonly lmHeadName: string | undefined
}

/** @category stage kinds */
export const TokenizerAlign = Stage.define({
  kind: KIND,
  version: 1,
  description: "Permutes a model's embedding and lm_head rows to a target vocabulary (mergekit's tokenizer_source: base, union or a model's) and writes that tokenizer.",
  reference: "https://github.com/arcee-ai/mergekit/blob/main/mergekit/tokenizer/build.py",
  params: Schema.Struct({
    source: Schema.String.check(Schema.isPattern(SOURCE)).annotate({ description: "the target vocabulary: base, union, or model:<index in models | base | folder>" }),
    pick: ModelRef
      .annotate({ description: "the input to output: base, or an index in models" }),
    chat_template: Schema.optional(Schema.String.annotate({ description: "a mergekit template name (chatml, llama3, mistral, alpaca, exaone), auto, or Jinja text" })),
    pad_to_multiple_of: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)).annotate({ description: "round the row count up; new rows are the mean row" })),
    tokens: Schema.optional(Schema.Record(Schema.String, TokenConfig).annotate({ description: "mergekit's tokenizer.tokens: tokens added to the vocabulary, each with its row's source" }))
  }),
  reads: (params) => {
    const folder = sourceModel(params.source)
    return folder === undefined || folder === "base" || /^\d+$/.test(folder) ? [] : [{ file: folder }]
  },
  inputs: {
    models: Port.many(Port.ModelPort, { min: 1, description: "the models of the merge, each loaded from a Hugging Face folder" }),
    base: Port.optional(Port.ModelPort, "the merge's base model")
  },
  output: Port.ModelPort,
  resources: { lazy: true },
  run: Effect.fn("TokenizerAlign.run")(function*({ id, params, inputs, resolvePath, runDir, dryRun }) {
    const fail = (detail: string) => Effect.fail(new TokenizerAlignError({ stage: id, detail }))
    const picked = params.pick === "base" ? inputs.base : inputs.models[params.pick]
    if (picked === undefined) {
      return yield* fail(params.pick === "base" ? "pick: base needs a base input" : `pick: ${params.pick} is past the ${inputs.models.length} models`)
    }
    // mergekit's models: the base and the models, each once (a model is its folder).
    const ordered = [...(inputs.base === undefined ? [] : [inputs.base]), ...inputs.models]
    const byFolder = new Map<string, Model.Model>()
    for (const model of ordered) {
      const folder = folderOf(model)
      if (folder === undefined) return yield* fail(`${model.source} has no Hugging Face folder to read its tokenizer from: load it from a folder with a config.json`)
      if (!byFolder.has(folder)) byFolder.set(folder, model)
    }
    const folders = [...byFolder.keys()]
    // The tokenizer base is the base, else the first model; it alone is stripped (as in mergekit).
    const baseFolder = folders[0]!
    const participants: Array<Participant> = []
    for (const [folder, model] of byFolder) {
      const read = yield* Tokenizer.read(folder)
      const tokenizer = folder === baseFolder ? yield* Tokenizer.strip(read) : read
      const arch = yield* Architecture.readConfig(folder).pipe(Effect.flatMap((c) => Effect.fromResult(Architecture.fromConfig(c, path.join(folder, "config.json")))))
      const embedding = model.tensors.get(arch.embedding)
      if (embedding === undefined || embedding.shape.length !== 2) return yield* fail(`${model.source} has no 2-D embedding "${arch.embedding}"`)
      const lmHead = arch.lmHead === undefined ? undefined : model.tensors.get(arch.lmHead)
      participants.push({ model, folder, tokenizer, stripped: tokenizer !== read, embedding, lmHead, lmHeadName: lmHead === undefined ? undefined : arch.lmHead })
    }
    const hidden = participants[0]!.embedding.shape[1]!
    const odd = participants.find((p) => p.embedding.shape[1] !== hidden || (p.lmHead !== undefined && p.lmHead.shape[1] !== hidden))
    if (odd !== undefined) return yield* fail(`embedding widths differ: ${odd.model.source} has ${odd.embedding.shape[1]}, ${participants[0]!.model.source} ${hidden}`)

    const built = yield* targetTokenizer(params.source, participants, inputs, resolvePath).pipe(
      Effect.catchTag("TokenizerAlignError", (e) => Effect.fail(new TokenizerAlignError({ stage: id, detail: e.detail })))
    )
    const tokenConfigs = Object.entries(params.tokens ?? {})
    const target = Tokenizer.addPlain(built, tokenConfigs.map(([token]) => token))
    const targetVocab = Tokenizer.vocab(target)
    const size = Tokenizer.size(targetVocab)
    const paddedSize = EmbeddingRows.padded(size, params.pad_to_multiple_of)
    const perms = participants.map((p) =>
      EmbeddingRows.permutation(targetVocab, size, Tokenizer.vocab(p.tokenizer), Math.min(p.tokenizer.vocabSize ?? Infinity, p.embedding.shape[0]!)))
    const defaults = [...EmbeddingRows.defaults(perms, inputs.base === undefined ? undefined : 0, size)]
    const participantOf = (ref: "base" | number) => {
      const model = ref === "base" ? inputs.base : inputs.models[ref]
      return model === undefined ? -1 : folders.indexOf(folderOf(model)!)
    }
    for (const [token, config] of tokenConfigs) {
      const k = targetVocab.get(token)!
      const source = config.source
      if (source === "zero") {
        defaults[k] = { _tag: "Zero", force: config.force }
        continue
      }
      const p = participantOf(source.model)
      const where = `tokens[${JSON.stringify(token)}]`
      if (p < 0) return yield* fail(`${where}: model ${source.model} is not an input`)
      if (source.token_id !== undefined && source.token !== undefined) return yield* fail(`${where}: give token_id or token, not both`)
      const row = source.token_id ?? (source.token === undefined ? perms[p]!.rows[k]! : Tokenizer.vocab(participants[p]!.tokenizer).get(source.token) ?? -1)
      if (row < 0 || row >= participants[p]!.embedding.shape[0]!) {
        return yield* fail(`${where}: ${participants[p]!.model.source} has no row for ${source.token_id ?? JSON.stringify(source.token ?? token)}`)
      }
      defaults[k] = { _tag: "Row", model: p, row, force: config.force }
    }
    const m = folders.indexOf(folderOf(picked)!)
    const me = participants[m]!

    const tensors = new Map(picked.tensors)
    const aligned = (like: TensorRef.TensorRef, sources: ReadonlyArray<TensorRef.TensorRef>) =>
      permutedTensor(like, sources, { m, perms, defaults, hidden, size, paddedSize })
    tensors.set(me.embedding.name, aligned(me.embedding, participants.map((p) => p.embedding)))
    if (me.lmHead !== undefined) tensors.set(me.lmHead.name, aligned(me.lmHead, participants.map((p) => p.lmHead ?? p.embedding)))

    const tokenizerDir = path.join(runDir, `${id}-tokenizer`)
    const chatTemplate = params.chat_template === undefined ? undefined
      : params.chat_template === "auto" ? ChatTemplates.plurality(participants.map((p) => Tokenizer.chatTemplateOf(p.tokenizer)))
      : yield* Effect.fromResult(ChatTemplates.resolve(params.chat_template))
    if (!dryRun) yield* writeFolder(tokenizerDir, target, params.source === "union" || target !== built || (params.source === "base" && participants[0]!.stripped), chatTemplate)
    yield* Effect.annotateCurrentSpan({ "crucible.tokenizer.source": params.source, "crucible.tokenizer.size": size, "crucible.tokenizer.folder": tokenizerDir })
    const provenance = picked.provenance!
    return {
      ...picked,
      tensors,
      source: `${id} (${picked.source} aligned to ${params.source})`,
      // A plan writes nothing: its save lists the files the target's own folder has (sizes approximate).
      provenance: { ...provenance, tokenizer: dryRun ? target.folder : tokenizerDir, methods: [...new Set([...provenance.methods, KIND])] }
    } satisfies Model.Model
  })
})

const targetTokenizer = (
  source: string,
  participants: ReadonlyArray<Participant>,
  inputs: { readonly base?: Model.Model | undefined; readonly models: ReadonlyArray<Model.Model> },
  resolvePath: (p: string) => string
): Effect.Effect<Tokenizer.Tokenizer, TokenizerAlignError | Tokenizer.TokenizerError> => {
  const models = inputs.models
  if (source === "base") return Effect.succeed(participants[0]!.tokenizer)
  if (source === "union") return Effect.succeed(Tokenizer.union(participants[0]!.tokenizer, participants.slice(1).map((p) => p.tokenizer)))
  const ref = sourceModel(source)!
  // mergekit's tokenizer_source naming the base model: its tokenizer as its folder has it (not stripped)
  if (ref === "base") {
    if (inputs.base === undefined) return Effect.fail(new TokenizerAlignError({ stage: "", detail: "source model:base needs a base input (a folder named base is ./base)" }))
    return Tokenizer.read(folderOf(inputs.base)!)
  }
  if (/^\d+$/.test(ref)) {
    const model = models[Number(ref)]
    if (model === undefined) return Effect.fail(new TokenizerAlignError({ stage: "", detail: `source ${source}: there are ${models.length} models` }))
    return Tokenizer.read(folderOf(model)!)
  }
  return Tokenizer.read(resolvePath(ref))
}

interface Plan {
  readonly m: number
  readonly perms: ReadonlyArray<EmbeddingRows.Permutation>
  readonly defaults: ReadonlyArray<EmbeddingRows.Default>
  readonly hidden: number
  readonly size: number
  readonly paddedSize: number
}

/**
 * The lazy permuted tensor: a read of some rows reads, of each source, only the span of rows those
 * rows need (one range read per source); a read that reaches the padding rows computes them all.
 */
const permutedTensor = (like: TensorRef.TensorRef, sources: ReadonlyArray<TensorRef.TensorRef>, plan: Plan): TensorRef.TensorRef => {
  const { hidden, size, paddedSize } = plan
  const dtype = DType.parseWritable(like.dtype) ?? "F32"
  const rows = (from: number, to: number) =>
    Effect.gen(function*() {
      const need = EmbeddingRows.rowsRead(plan.m, plan.perms, plan.defaults, from, to)
      // Each source's rows are read in runs of nearby rows: a union's new rows take scattered rows of
      // the other models, and one span from the first to the last would read most of their embedding.
      const runs = yield* Effect.forEach(need, (wanted, i) =>
        Effect.forEach(EmbeddingRows.runs(wanted, RUN_GAP), ({ lo, hi }) =>
          sources[i]!.read({ start: lo * hidden, end: hi * hidden }).pipe(Effect.map((bytes) => ({ lo, hi, values: DType.toFloat64(bytes, sources[i]!.dtype) })))))
      const row = (model: number, r: number) => {
        const run = EmbeddingRows.runOf(runs[model]!, r)
        return run.values.subarray((r - run.lo) * hidden, (r - run.lo + 1) * hidden)
      }
      return EmbeddingRows.permuteRows(plan.m, plan.perms, plan.defaults, row, hidden, from, to)
    })
  const read = (range?: TensorRef.ElementRange) =>
    Effect.gen(function*() {
      const { start, end } = TensorRef.rangeOf({ shape: [paddedSize, hidden] }, range)
      const first = Math.floor(start / hidden)
      const last = Math.ceil(end / hidden)
      const values = new Float64Array((last - first) * hidden)
      if (last > size) {
        const all = yield* rows(0, size)
        const mean = EmbeddingRows.meanRow(all, hidden)
        for (let k = first; k < last; k++) values.set(k < size ? all.subarray(k * hidden, (k + 1) * hidden) : mean, (k - first) * hidden)
      } else values.set(yield* rows(first, last))
      return DType.fromNumbers(values.subarray(start - first * hidden, end - first * hidden), dtype)
    })
  return TensorRef.withLineage({ name: like.name, dtype, shape: [paddedSize, hidden], read }, Lineage.derived(sources, { bytes: 8 * paddedSize * hidden }))
}

/**
 * Writes the target tokenizer's files to `dir`: re-encoded when they differ from its folder's (a
 * stripped base, a union) or a chat template is set, else copied byte for byte.
 */
const writeFolder = (dir: string, target: Tokenizer.Tokenizer, rewrite: boolean, chatTemplate: string | undefined) =>
  Effect.gen(function*() {
    const io = <A>(what: string, f: () => Promise<A>) =>
      Effect.tryPromise({ try: f, catch: (cause) => new Tokenizer.TokenizerError({ file: what, detail: cause instanceof Error ? cause.message : String(cause) }) })
    // a folder left by an earlier try of this stage may hold files this target does not have
    yield* io(dir, () => fs.rm(dir, { recursive: true, force: true }).then(() => fs.mkdir(dir, { recursive: true })))
    for (const name of TOKENIZER_FILES) {
      const file = path.join(target.folder, name)
      if (name === "tokenizer.json" && rewrite) yield* AtomicFile.writeWhole(path.join(dir, name), Tokenizer.tokenizerJson(target))
      else if (name === "tokenizer_config.json" && (rewrite || chatTemplate !== undefined)) yield* AtomicFile.writeWhole(path.join(dir, name), Tokenizer.tokenizerConfigJson(target, chatTemplate))
      // added_tokens.json (transformers' legacy list) is stale once tokens change, a chat template file
      // would override the one set here.
      else if (!(rewrite && name === "added_tokens.json") && !(chatTemplate !== undefined && name.startsWith("chat_template."))) {
        const bytes = yield* io(file, () => fs.readFile(file).catch((e: NodeJS.ErrnoException) => (e.code === "ENOENT" ? undefined : Promise.reject(e))))
        if (bytes !== undefined) yield* AtomicFile.writeWhole(path.join(dir, name), bytes)
      }
    }
  })
