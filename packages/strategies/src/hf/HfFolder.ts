/**
 * A Hugging Face model folder written from a model, as `from_pretrained` loads it and as
 * transformers and mergekit write it: the weights as `model.safetensors`, or
 * `model-0000N-of-0000M.safetensors` shards plus `model.safetensors.index.json` past the shard
 * size; the donor's `config.json` updated for the weights (`ModelConfig`); the donor's tokenizer
 * and other small files (`FolderFiles`), the tokenizer from another folder when asked, a chat
 * template (Jinja text, or one of mergekit's names: `ChatTemplates.named`) set in
 * `tokenizer_config.json`; and a `README.md` model card (`ModelCard`). The folder
 * appears whole (`AtomicFolder`), never over a folder the model is read from, nor over a non-empty
 * folder that holds no model (`AtomicFolder.refuseForeign`: a user's own files).
 *
 * Without a donor (the model comes from no Hugging Face folder and no `configFrom` is given), the
 * folder holds the weights, their index and the card, which says that no config was available.
 *
 * @since 0.1.0
 */
import { DType, Formats, IoError, type Model } from "@crucible/core"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { CONFIG_KEY } from "../lm/LmConfig.ts"
import * as Architecture from "./Architecture.ts"
import * as AtomicFolder from "./AtomicFolder.ts"
import * as ChatTemplates from "./ChatTemplates.ts"
import * as FolderFiles from "./FolderFiles.ts"
import { HfFolderError } from "./HfFolderError.ts"
import * as ModelCard from "./ModelCard.ts"
import * as ModelConfig from "./ModelConfig.ts"

/** The weights file of a folder; shards are named after it (`model-00001-of-00002.safetensors`). @category constants */
export const WEIGHTS = "model.safetensors"

/** mergekit's (and transformers') default shard: 5 billion parameters. @category constants */
export const DEFAULT_SHARD_PARAMETERS = 5e9

/** Options of {@link write} and {@link plan}. @category models */
export interface Options {
  /** The save stage's id and its pipeline's name, for the card and the weights' metadata. */
  readonly stage: string
  readonly pipeline?: string | undefined
  /** Where the model's weights come from (the input's `Model.provenance`, kept across a dtype cast). */
  readonly provenance: Model.Provenance | undefined
  /** The folder whose config.json and small files to take, over the provenance's donor. */
  readonly configFrom?: string | undefined
  /** The folder whose tokenizer files to take, over the provenance's `tokenizer` folder and the donor's. */
  readonly tokenizerFrom?: string | undefined
  /** A chat template set as `tokenizer_config.json`'s `chat_template`: Jinja text, or a mergekit name ({@link isTemplateName}) for its text. */
  readonly chatTemplate?: string | undefined
  /** Largest shard in bytes; default: 5·10⁹ parameters of the written dtype. */
  readonly shardSize?: number | undefined
  readonly metadata?: Readonly<Record<string, string>> | undefined
  readonly onTensorWritten?: Formats.WriteOptions["onTensorWritten"]
}

/** The folder's files besides the weights: those it writes and those it copies. @category models */
export interface Contents {
  readonly written: ReadonlyArray<{ readonly name: string; readonly bytes: Uint8Array }>
  readonly copied: ReadonlyArray<FolderFiles.Copied>
  readonly shardSize: number
}

const encode = (text: string) => new TextEncoder().encode(text)
const json = (value: unknown) => encode(`${JSON.stringify(value, null, 2)}\n`)
const TEMPLATE_FILES = ["chat_template.jinja", "chat_template.json"]

/** One of the template names mergekit ships (chatml, llama3, mistral, alpaca, exaone). @category chat templates */
export const isTemplateName = (value: string): boolean => Object.hasOwn(ChatTemplates.named, value)

/** The Jinja text of a chat template option: a mergekit name's shipped text, else the value itself. @category chat templates */
export const templateText = (value: string): string => (isTemplateName(value) ? ChatTemplates.named[value]! : value)

/**
 * The config.json a model carries in its metadata when no folder gives one: `lm/train` from an
 * inline `config:` stores it there (`LmConfig.CONFIG_KEY`), so the saved folder still loads.
 */
const embeddedConfig = (model: Model.Model): Record<string, unknown> | undefined => {
  const text = model.metadata[CONFIG_KEY]
  if (text === undefined) return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return undefined // not ours to judge: the folder then has no config, as without a donor
  }
  return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? ModelConfig.forModel(parsed as Record<string, unknown>, model) : undefined
}

/**
 * What the folder at `target` will hold besides the weights, read from the donor (nothing is
 * written). Fails when a folder to read from lacks what is asked of it, or when `target` holds a
 * file the model is read from (or is a folder files are copied from).
 *
 * @category constructors
 */
export const contents = (target: string, model: Model.Model, options: Options): Effect.Effect<Contents, HfFolderError | IoError.IoError | Architecture.ArchitectureError> =>
  Effect.gen(function* () {
    const donor = options.configFrom ?? options.provenance?.donor
    // tokenizer/align's folder (provenance.tokenizer) holds the vocabulary the embeddings were permuted to
    const tokenizerFrom = options.tokenizerFrom ?? options.provenance?.tokenizer
    yield* refuseInputs(target, model, [donor, tokenizerFrom])
    yield* AtomicFolder.refuseForeign(target)
    const config = donor === undefined ? embeddedConfig(model) : ModelConfig.forModel(yield* Architecture.readConfig(donor), model)
    let copied = yield* FolderFiles.fromDonor(donor, tokenizerFrom)
    const written: Array<{ name: string; bytes: Uint8Array }> = []
    if (config !== undefined) written.push({ name: "config.json", bytes: json(config) })
    if (options.chatTemplate !== undefined) {
      // The template file formats take precedence over tokenizer_config.json in transformers: dropped, so the given one is used.
      copied = copied.filter((f) => !TEMPLATE_FILES.includes(f.name))
      const existing = copied.find((f) => f.name === "tokenizer_config.json")
      const tokenizerConfig = existing === undefined ? {} : yield* readJsonObject(existing.from)
      copied = copied.filter((f) => f !== existing)
      written.push({ name: "tokenizer_config.json", bytes: json({ ...tokenizerConfig, chat_template: templateText(options.chatTemplate) }) })
    }
    written.push({ name: "README.md", bytes: encode(ModelCard.render({ provenance: options.provenance, pipeline: options.pipeline, stage: options.stage, hasConfig: config !== undefined })) })
    const element = DType.byteSize[ModelConfig.dominantFloat(model) ?? "F32"]
    return { written, copied, shardSize: options.shardSize ?? DEFAULT_SHARD_PARAMETERS * element }
  })

/** What {@link write} would write: every file with its size (nothing is read but headers and the donor's small files). @category constructors */
export const plan = (target: string, model: Model.Model, options: Options): Effect.Effect<Formats.PlannedWrite, HfFolderError | IoError.ModelIoError | Architecture.ArchitectureError> =>
  Effect.gen(function* () {
    const folder = yield* contents(target, model, options)
    const weights = yield* Formats.planWrite(path.join(target, WEIGHTS), model, weightOptions(options, folder))
    return {
      files: [
        ...weights.files,
        ...folder.written.map((f) => ({ path: path.join(target, f.name), bytes: f.bytes.byteLength })),
        ...folder.copied.map((f) => ({ path: path.join(target, f.name), bytes: f.bytes }))
      ],
      workingSetBytes: weights.workingSetBytes
    }
  })

/**
 * Writes the folder at `target`, whole or not at all, replacing a folder there only once the new
 * one is complete. Returns every file written with its size and sha256.
 *
 * @category constructors
 */
export const write = (target: string, model: Model.Model, options: Options) =>
  Effect.scoped(Effect.gen(function* () {
    const folder = yield* contents(target, model, options)
    yield* AtomicFolder.sweep(target)
    const staging = yield* AtomicFolder.open(target)
    const weights = yield* Formats.writeModel(path.join(staging.temporary, WEIGHTS), model, {
      ...weightOptions(options, folder),
      ...(options.onTensorWritten === undefined ? {} : { onTensorWritten: options.onTensorWritten })
    })
    const others = yield* Effect.try({
      try: () => [
        ...folder.written.map((f) => writeSmall(staging.temporary, f.name, f.bytes)),
        ...folder.copied.map((f) => writeSmall(staging.temporary, f.name, fs.readFileSync(f.from)))
      ],
      catch: (cause) => new IoError.IoError({ file: target, operation: "write", detail: cause instanceof Error ? cause.message : String(cause) })
    })
    yield* staging.publish
    const files = [...weights.files.map((f) => ({ ...f, path: path.join(target, path.basename(f.path)) })), ...others.map((f) => ({ ...f, path: path.join(target, f.name) }))]
    return { files }
  }))

const weightOptions = (options: Options, folder: Contents) => ({
  format: "safetensors" as const,
  shardSize: folder.shardSize,
  metadata: { ...options.metadata, "crucible.stage": options.stage }
})

const writeSmall = (dir: string, name: string, bytes: Uint8Array) => {
  AtomicFolder.writeFileSynced(path.join(dir, name), bytes)
  return { name, bytes: bytes.byteLength, sha256: createHash("sha256").update(bytes).digest("hex") }
}

const readJsonObject = (file: string): Effect.Effect<Record<string, unknown>, HfFolderError> =>
  Effect.try({
    try: () => {
      const parsed: unknown = JSON.parse(fs.readFileSync(file, "utf8"))
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not a JSON object")
      return parsed as Record<string, unknown>
    },
    catch: (cause) => new HfFolderError({ folder: path.dirname(file), file: path.basename(file), detail: `cannot be read: ${cause instanceof Error ? cause.message : String(cause)}` })
  })

// A folder replaced whole must not hold what the model or the copies are read from.
const refuseInputs = (target: string, model: Model.Model, folders: ReadonlyArray<string | undefined>): Effect.Effect<void, IoError.IoError> => {
  const real = (p: string) => {
    try { return fs.realpathSync(p) } catch { return path.resolve(p) }
  }
  const root = real(target)
  const inside = (p: string) => { const r = real(p); return r === root || r.startsWith(`${root}${path.sep}`) }
  const clash = [...model.files, ...folders.filter((f): f is string => f !== undefined)].find(inside)
  return clash === undefined
    ? Effect.void
    : Effect.fail(new IoError.IoError({ file: target, operation: "overwrite", detail: `this folder holds ${clash}, which the model is read from; save to another folder` }))
}
