/**
 * A Hugging Face tokenizer (`tokenizer.json`, with `tokenizer_config.json` beside it when there
 * is one) run by `@huggingface/tokenizers` (pure JS): byte-level BPE (GPT-2, Llama-3, Qwen),
 * SentencePiece-style BPE with byte fallback (Llama-2, Mistral), and the other models it supports.
 *
 * `encode` adds special tokens (the `post_processor`'s template, e.g. Llama-2's `<s>`) only when
 * `tokenizer_config.json` says so (`add_bos_token` or `add_eos_token` true): the text stages add
 * EOS themselves between documents. `decode` keeps special tokens and cleans up spaces only when
 * the config's `clean_up_tokenization_spaces` is true (the library's default is true; Python
 * `tokenizers`' decode never does), so a byte-level round trip gives the text back.
 *
 * EOS and BOS are the config's `eos_token` / `bos_token` (a string or `{ content }`); without a
 * config entry, the first special added token among the usual names (`<|endoftext|>`, `</s>`,
 * `<|end_of_text|>`, `<eos>` / `<s>`, `<|begin_of_text|>`, `<bos>`).
 *
 * @since 0.1.0
 */
import { Model, RunCache } from "@crucible/core"
import { Tokenizer } from "@huggingface/tokenizers"
import { Effect } from "effect"
import * as fsp from "node:fs/promises"
import * as path from "node:path"
import { describe, TextError } from "./TextError.ts"

/** @category models */
export interface TextTokenizer {
  /** The tokenizer.json it was read from. */
  readonly source: string
  /** One more than the largest id (added tokens included). */
  readonly vocabSize: number
  readonly eos: number | undefined
  readonly bos: number | undefined
  readonly encode: (text: string) => Int32Array
  readonly decode: (ids: ArrayLike<number>) => string
}

const EOS_NAMES = ["<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", "<|im_end|>"]
const BOS_NAMES = ["<s>", "<|begin_of_text|>", "<bos>"]

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

const tokenContent = (v: unknown): string | undefined => (typeof v === "string" ? v : isObject(v) && typeof v["content"] === "string" ? v["content"] : undefined)

/**
 * A tokenizer from parsed `tokenizer.json` and `tokenizer_config.json` objects (`source` for
 * messages). Throws what the library throws for a tokenizer it cannot build.
 *
 * @category constructors
 */
export const make = (json: Record<string, unknown>, config: Record<string, unknown>, source: string): TextTokenizer => {
  const tokenizer = new Tokenizer(json, config)
  const vocab = tokenizer.get_vocab(true)
  let vocabSize = 0
  for (const id of vocab.values()) vocabSize = Math.max(vocabSize, id + 1)
  const added = Array.isArray(json["added_tokens"]) ? (json["added_tokens"] as ReadonlyArray<unknown>).filter(isObject) : []
  const special = (names: ReadonlyArray<string>) => {
    for (const name of names) {
      const token = added.find((t) => t["content"] === name && t["special"] === true)
      if (token !== undefined && typeof token["id"] === "number") return token["id"]
    }
    return undefined
  }
  const idOf = (key: string, names: ReadonlyArray<string>) => {
    const content = tokenContent(config[key])
    return content !== undefined ? tokenizer.token_to_id(content) : special(names)
  }
  const addSpecialTokens = config["add_bos_token"] === true || config["add_eos_token"] === true
  const cleanUp = config["clean_up_tokenization_spaces"] === true
  return {
    source,
    vocabSize,
    eos: idOf("eos_token", EOS_NAMES),
    bos: idOf("bos_token", BOS_NAMES),
    encode: (text) => Int32Array.from(tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids),
    decode: (ids) => (ids.length === 0 ? "" : tokenizer.decode(Array.from(ids), { skip_special_tokens: false, clean_up_tokenization_spaces: cleanUp }))
  }
}

const readJson = (file: string, optional: boolean): Effect.Effect<Record<string, unknown> | undefined, TextError> =>
  Effect.tryPromise({
    try: async () => {
      let text: string
      try {
        text = await fsp.readFile(file, "utf8")
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") {
          if (optional) return undefined
          throw new TextError({ source: file, detail: "no such file: give `tokenizer:` a tokenizer.json or a folder holding one (a Hugging Face model folder)" })
        }
        throw e
      }
      const value: unknown = JSON.parse(text)
      if (!isObject(value)) throw new TextError({ source: file, detail: "expected a JSON object" })
      return value
    },
    catch: (cause) => (cause instanceof TextError ? cause : new TextError({ source: file, detail: `cannot read it: ${describe(cause)}` }))
  })

/** The tokenizer.json a path names: the file itself, or `tokenizer.json` in the folder. @category reading */
export const tokenizerFile = (fileOrFolder: string): Effect.Effect<string, TextError> =>
  Effect.tryPromise({
    try: async () => ((await fsp.stat(fileOrFolder)).isDirectory() ? path.join(fileOrFolder, "tokenizer.json") : fileOrFolder),
    catch: (cause) => new TextError({ source: fileOrFolder, detail: `no tokenizer here (${describe(cause)}): give \`tokenizer:\` a tokenizer.json or a folder holding one` })
  })

/** Reads `tokenizer.json` (a file, or a folder's) and the `tokenizer_config.json` beside it (optional). Memoised for the run. @category reading */
export const read = (fileOrFolder: string): Effect.Effect<TextTokenizer, TextError> =>
  Effect.flatMap(tokenizerFile(fileOrFolder), (file) =>
    RunCache.memo(
      `crucible/tokenizer:${path.resolve(file)}`,
      Effect.gen(function* () {
        const json = (yield* readJson(file, false))!
        const config = (yield* readJson(path.join(path.dirname(file), "tokenizer_config.json"), true)) ?? {}
        return yield* Effect.try({
          try: () => make(json, config, file),
          catch: (cause) => new TextError({ source: file, detail: `not a tokenizer @huggingface/tokenizers can run: ${describe(cause)}` })
        })
      })
    )
  )

/**
 * A model's tokenizer: `param` when given (a path, resolved); else the tokenizer folder of the
 * model's provenance (`tokenizer`, else `donor`); else an error saying to give `tokenizer:`.
 *
 * @category reading
 */
export const tokenizerOf = (model: Model.Model | undefined, param: string | undefined, resolvePath: (p: string) => string): Effect.Effect<TextTokenizer, TextError> => {
  if (param !== undefined) return read(resolvePath(param))
  const folder = model?.provenance?.tokenizer ?? model?.provenance?.donor
  if (folder !== undefined) return read(folder)
  return Effect.fail(
    new TextError({
      source: model?.source ?? "the stage",
      detail: "no tokenizer: the model comes from no Hugging Face folder with a tokenizer.json; give `tokenizer:` (a tokenizer.json or a folder holding one)"
    })
  )
}
