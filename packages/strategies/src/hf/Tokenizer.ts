/**
 * A Hugging Face fast tokenizer as its folder stores it — `tokenizer.json` (the model's vocabulary
 * and the added tokens), `tokenizer_config.json`, and `config.json`'s `vocab_size` (the rows the
 * model's embedding really uses) — and the vocabularies mergekit builds from tokenizers
 * (`mergekit/tokenizer/build.py`, commit a6e4028): a tokenizer stripped of the tokens past
 * `vocab_size` (`get_stripped_tokenizer`) and the union of several (`build_union_tokenizer`).
 *
 * Only `tokenizer.json` is read: a folder with only a SentencePiece `tokenizer.model` is refused
 * (mergekit loads it through transformers' converters, which Crucible does not have).
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"

/** A token of `tokenizer.json`'s `added_tokens`, with transformers' flags. @category models */
export interface AddedToken {
  readonly id: number
  readonly content: string
  readonly special: boolean
  readonly single_word: boolean
  readonly lstrip: boolean
  readonly rstrip: boolean
  readonly normalized: boolean
}

/** @category models */
export interface Tokenizer {
  /** The folder it was read from. */
  readonly folder: string
  /** `tokenizer.json`, parsed; its `model`, normalizer, pre-tokenizer… are kept as they are. */
  readonly json: Readonly<Record<string, unknown>>
  /** Its added tokens, by id. */
  readonly added: ReadonlyArray<AddedToken>
  /** `tokenizer_config.json`, parsed ({} when absent). */
  readonly config: Readonly<Record<string, unknown>>
  /** `config.json`'s `vocab_size`, when there is one: ids from here on have no embedding row. */
  readonly vocabSize: number | undefined
}

/** A tokenizer file that cannot be read or used. @category errors */
export class TokenizerError extends Schema.TaggedError<TokenizerError>()("TokenizerError", {
  file: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `${this.file}: ${this.detail}`
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

const readJson = (file: string, optional: boolean) =>
  Effect.tryPromise({
    try: async () => {
      const text = await fs.readFile(file, "utf8").catch((e: NodeJS.ErrnoException) => {
        if (optional && e.code === "ENOENT") return undefined
        throw e
      })
      return text === undefined ? undefined : (JSON.parse(text) as unknown)
    },
    catch: (cause) => new TokenizerError({ file, detail: `cannot read: ${cause instanceof Error ? cause.message : String(cause)}` })
  }).pipe(Effect.flatMap((v) => (v === undefined || isObject(v) ? Effect.succeed(v) : Effect.fail(new TokenizerError({ file, detail: "is not a JSON object" })))))

const flag = (v: unknown, fallback: boolean): boolean => (typeof v === "boolean" ? v : fallback)

const addedOf = (entries: unknown, file: string): Effect.Effect<ReadonlyArray<AddedToken>, TokenizerError> => {
  if (entries === undefined || entries === null) return Effect.succeed([])
  if (!Array.isArray(entries)) return Effect.fail(new TokenizerError({ file, detail: "added_tokens is not a list" }))
  const out: Array<AddedToken> = []
  for (const e of entries) {
    if (!isObject(e) || typeof e["id"] !== "number" || typeof e["content"] !== "string") {
      return Effect.fail(new TokenizerError({ file, detail: `added token ${JSON.stringify(e)} needs an id and a content` }))
    }
    const special = flag(e["special"], false)
    out.push({
      id: e["id"], content: e["content"], special,
      single_word: flag(e["single_word"], false), lstrip: flag(e["lstrip"], false), rstrip: flag(e["rstrip"], false),
      normalized: flag(e["normalized"], !special)
    })
  }
  return Effect.succeed(out.sort((a, b) => a.id - b.id))
}

/** `tokenizer.json`'s model vocabulary (without added tokens): token → id. */
export const modelVocab = (tokenizer: Pick<Tokenizer, "json">): ReadonlyMap<string, number> => {
  const model = tokenizer.json["model"]
  const vocab = isObject(model) ? model["vocab"] : undefined
  // Unigram stores [piece, score] pairs, the id being the position.
  if (Array.isArray(vocab)) return new Map(vocab.map((entry, id) => [String(Array.isArray(entry) ? entry[0] : entry), id]))
  if (isObject(vocab)) return new Map(Object.entries(vocab).filter((e): e is [string, number] => typeof e[1] === "number"))
  return new Map()
}

/** Every token with its id, added tokens included (transformers' `get_vocab()`). @category getters */
export const vocab = (tokenizer: Pick<Tokenizer, "json" | "added">): ReadonlyMap<string, number> => {
  const all = new Map(modelVocab(tokenizer))
  for (const t of tokenizer.added) all.set(t.content, t.id)
  return all
}

/** The rows an embedding for this vocabulary needs: the largest id + 1. @category getters */
export const size = (tokens: ReadonlyMap<string, number>): number => {
  let max = -1
  for (const id of tokens.values()) max = Math.max(max, id)
  return max + 1
}

/** The tokenizer of `folder` (its tokenizer.json, tokenizer_config.json, config.json's vocab_size). @category constructors */
export const read = Effect.fn("Tokenizer.read")(function*(folder: string) {
  const file = path.join(folder, "tokenizer.json")
  const json = yield* readJson(file, true)
  if (json === undefined) {
    return yield* new TokenizerError({ file, detail: "not found: only fast tokenizers (a tokenizer.json) can be aligned; save the tokenizer with transformers to write one" })
  }
  if (!isObject(json["model"])) return yield* new TokenizerError({ file, detail: "has no \"model\" object" })
  const added = yield* addedOf(json["added_tokens"], file)
  const config = (yield* readJson(path.join(folder, "tokenizer_config.json"), true)) ?? {}
  const modelConfig = yield* readJson(path.join(folder, "config.json"), true)
  const vocabSize = modelConfig?.["vocab_size"] ?? (isObject(modelConfig?.["text_config"]) ? modelConfig["text_config"]["vocab_size"] : undefined)
  return { folder, json, added, config, vocabSize: typeof vocabSize === "number" ? vocabSize : undefined } satisfies Tokenizer
})

/**
 * The tokenizer without the tokens whose id is `vocab_size` or more (padding entries the model has
 * no row for), as mergekit's `get_stripped_tokenizer`: removed from the vocabulary, the added
 * tokens and the BPE merges that use them; only BPE models can be stripped (as in mergekit).
 *
 * @category constructors
 */
export const strip = (tokenizer: Tokenizer): Effect.Effect<Tokenizer, TokenizerError> => {
  const limit = tokenizer.vocabSize
  if (limit === undefined) return Effect.succeed(tokenizer)
  const unused = new Set([...vocab(tokenizer)].filter(([, id]) => id >= limit).map(([t]) => t))
  if (unused.size === 0) return Effect.succeed(tokenizer)
  const model = tokenizer.json["model"] as Record<string, unknown>
  if (model["type"] !== "BPE") {
    return Effect.fail(new TokenizerError({
      file: path.join(tokenizer.folder, "tokenizer.json"),
      detail: `has ${unused.size} tokens at ids ≥ vocab_size ${limit} and a ${String(model["type"])} model: only BPE tokenizers can be stripped (as in mergekit)`
    }))
  }
  const keptVocab = Object.fromEntries([...modelVocab(tokenizer)].filter(([t]) => !unused.has(t)))
  const merges = Array.isArray(model["merges"]) ? model["merges"] : []
  const keepMerge = (m: unknown) => (typeof m === "string" ? m.split(" ") : Array.isArray(m) ? m : []).every((t) => !unused.has(String(t)))
  const added = tokenizer.added.filter((t) => t.id < limit)
  return Effect.succeed({
    ...tokenizer,
    added,
    json: { ...tokenizer.json, added_tokens: added, model: { ...model, vocab: keptVocab, merges: merges.filter(keepMerge) } }
  })
}

// transformers' `add_tokens("text")`: a plain, normalized token.
const plainToken = (content: string, id: number): AddedToken =>
  ({ id, content, special: false, single_word: false, lstrip: false, rstrip: false, normalized: true })

/**
 * The union vocabulary, as mergekit's `build_union_tokenizer`: `base` (already stripped) plus, as
 * added tokens with the next ids, each token of `others` (in their order, each by id) that the
 * base lacks and that has an embedding row (id < its `vocab_size`), then the other tokenizers'
 * added tokens the base lacks, with their flags (the first tokenizer's flags when they differ).
 * mergekit takes the plain tokens in the order of a hash map; here it is models' order, then id.
 *
 * @category constructors
 */
export const union = (base: Tokenizer, others: ReadonlyArray<Tokenizer>): Tokenizer => {
  const plain: Array<string> = []
  const seenPlain = new Set<string>()
  const addedByContent = new Map<string, AddedToken>()
  for (const t of [base, ...others]) {
    // mergekit's fallback for a model without vocab_size is the tokenizer's size without added tokens
    const limit = t.vocabSize ?? modelVocab(t).size
    const addedHere = new Set(t.added.map((a) => a.content))
    for (const [token, id] of [...vocab(t)].sort((a, b) => a[1] - b[1])) {
      if (id >= limit || addedHere.has(token) || seenPlain.has(token)) continue
      seenPlain.add(token)
      plain.push(token)
    }
    for (const a of t.added) if (a.id < limit && !addedByContent.has(a.content)) addedByContent.set(a.content, a)
  }
  const known = new Map(vocab(base))
  const added = [...base.added]
  const add = (token: AddedToken) => {
    known.set(token.content, token.id)
    added.push(token)
  }
  for (const token of plain) if (!addedByContent.has(token) && !known.has(token)) add(plainToken(token, size(known)))
  for (const a of addedByContent.values()) if (!known.has(a.content)) add({ ...a, id: size(known) })
  return { ...base, added, json: { ...base.json, added_tokens: added } }
}

/**
 * `tokens` added as plain tokens with the next ids where the vocabulary lacks them (transformers'
 * `add_tokens`, which mergekit calls for the tokens of its `tokenizer.tokens`).
 *
 * @category constructors
 */
export const addPlain = (tokenizer: Tokenizer, tokens: ReadonlyArray<string>): Tokenizer => {
  const known = new Map(vocab(tokenizer))
  const added = [...tokenizer.added]
  for (const token of tokens) {
    if (known.has(token)) continue
    const t = plainToken(token, size(known))
    known.set(token, t.id)
    added.push(t)
  }
  return added.length === tokenizer.added.length ? tokenizer : { ...tokenizer, added, json: { ...tokenizer.json, added_tokens: added } }
}

const decoderEntry = (t: AddedToken) =>
  ({ content: t.content, lstrip: t.lstrip, normalized: t.normalized, rstrip: t.rstrip, single_word: t.single_word, special: t.special })

/** `tokenizer.json` as transformers writes it: its added tokens in the file's field order. @category encoding */
export const tokenizerJson = (tokenizer: Tokenizer): string =>
  JSON.stringify({ ...tokenizer.json, added_tokens: tokenizer.added.map((t) => ({ id: t.id, ...decoderEntry(t) })) }, null, 2) + "\n"

/**
 * `tokenizer_config.json` with every added token in `added_tokens_decoder` (as `save_pretrained`
 * writes it) and, when given, the `chat_template`.
 *
 * @category encoding
 */
export const tokenizerConfigJson = (tokenizer: Tokenizer, chatTemplate?: string): string => {
  const decoder = Object.fromEntries(tokenizer.added.map((t) => [String(t.id), decoderEntry(t)]))
  const config = { ...tokenizer.config, added_tokens_decoder: decoder, ...(chatTemplate === undefined ? {} : { chat_template: chatTemplate }) }
  return JSON.stringify(config, null, 2) + "\n"
}

/** The chat template a tokenizer_config.json carries (a string, or the `default` of a named set). @category getters */
export const chatTemplateOf = (tokenizer: Pick<Tokenizer, "config">): string | undefined => {
  const t = tokenizer.config["chat_template"]
  if (typeof t === "string") return t
  if (Array.isArray(t)) {
    const d = t.find((e) => isObject(e) && e["name"] === "default")
    return isObject(d) && typeof d["template"] === "string" ? d["template"] : undefined
  }
  return isObject(t) && typeof t["default"] === "string" ? t["default"] : undefined
}
