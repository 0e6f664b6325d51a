/**
 * Which files of a Hugging Face model folder an output folder takes from it: everything small that
 * is not a weight — the tokenizer (`tokenizer.json`, `tokenizer.model`, `vocab.json`, …),
 * `generation_config.json`, a license — except `config.json` and `README.md`, which the output
 * writes itself. Hidden files and folders are not taken.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { HfFolderError } from "./HfFolderError.ts"

/** The files a tokenizer is read from (transformers' `AutoTokenizer`, sentencepiece, BPE). @category constants */
export const TOKENIZER_FILES: ReadonlyArray<string> = [
  "tokenizer.json",
  "tokenizer.model",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "vocab.json",
  "vocab.txt",
  "merges.txt",
  "spiece.model",
  "sentencepiece.bpe.model",
  "chat_template.jinja",
  "chat_template.json"
]

/** Files the output folder writes itself, never copied. @category constants */
export const WRITTEN_FILES: ReadonlyArray<string> = ["config.json", "README.md"]

/** Files larger than this are not "small files": weights under another name, datasets. */
export const MAX_COPIED_BYTES = 64 * 1024 * 1024

const WEIGHT_FILE = /\.(safetensors|bin|pt|pth|ckpt|h5|msgpack|gguf|onnx|pkl|npz|ot)$|\.index\.json$|^model\.json$|^group\d+-shard\d+of\d+/

/** True for the files that hold weights (or index them): never copied from a donor. @category predicates */
export const isWeightFile = (name: string): boolean => WEIGHT_FILE.test(name)

/** True for the files of a tokenizer. @category predicates */
export const isTokenizerFile = (name: string): boolean => TOKENIZER_FILES.includes(name)

/** One file to copy into the output folder. @category models */
export interface Copied {
  /** Its name in the output folder (and in the source folder). */
  readonly name: string
  /** The file copied. */
  readonly from: string
  readonly bytes: number
}

/**
 * The files of `folder` that `keep` accepts among its small, non-weight, non-hidden regular files
 * (links followed), sorted by name.
 *
 * @category constructors
 */
export const list = (folder: string, keep: (name: string) => boolean): Effect.Effect<ReadonlyArray<Copied>, HfFolderError> =>
  Effect.try({
    try: () =>
      fs.readdirSync(folder).sort().flatMap((name): Array<Copied> => {
        if (name.startsWith(".") || isWeightFile(name) || WRITTEN_FILES.includes(name) || !keep(name)) return []
        const from = path.join(folder, name)
        const stat = fs.statSync(from, { throwIfNoEntry: false })
        return stat !== undefined && stat.isFile() && stat.size <= MAX_COPIED_BYTES ? [{ name, from, bytes: stat.size }] : []
      }),
    catch: (cause) => new HfFolderError({ folder, detail: `cannot list its files: ${cause instanceof Error ? cause.message : String(cause)}` })
  })

/**
 * What an output folder copies: the donor's small files, the tokenizer's from `tokenizerFrom`
 * when given (the donor's tokenizer files are then left out).
 *
 * @category constructors
 */
export const fromDonor = (donor: string | undefined, tokenizerFrom: string | undefined): Effect.Effect<ReadonlyArray<Copied>, HfFolderError> =>
  Effect.gen(function* () {
    const fromTokenizer = tokenizerFrom === undefined ? [] : yield* list(tokenizerFrom, isTokenizerFile)
    const fromDonor = donor === undefined ? [] : yield* list(donor, (name) => tokenizerFrom === undefined || !isTokenizerFile(name))
    return [...fromDonor, ...fromTokenizer].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  })
