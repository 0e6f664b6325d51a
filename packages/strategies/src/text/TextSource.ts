/**
 * The `data:` parameter of the LM stages and the documents it names:
 *
 * - `brown`: the Brown corpus (`Brown.ts`): 500 documents, group = genre (`news`, `learned`, …).
 * - `{ text: path }`: a `.txt`/`.md` file, or a folder of them read recursively (file by file, in
 *   sorted relative-path order). A file's documents are its paragraphs (blocks between blank
 *   lines), so even one file splits by document. The group of a file in a sub-folder is the name of
 *   its first-level sub-folder (`data/news/a.txt` → `news`); of a file directly in the folder (or
 *   of a single file), the file's stem (`war.txt` → `war`).
 * - `{ jsonl: file, field?, group_field? }`: one JSON object per line (read line by line), the
 *   text in `field` (default `text`), the group in `group_field` (default: the file's stem); blank
 *   lines are skipped; a line that is not an object or lacks the field is an error naming the line.
 *
 * `split:` is by document, deterministic: the documents of each group, in source order (Brown: id
 * order), numbered k = 0, 1, …: k % 5 == 4 is `test`, k % 5 == 3 is `val`, the others `train`;
 * `all` is every document. A group of fewer than 5 documents has its last one in `test`, so every
 * group keeps at least one test document (every Brown genre has ≥ 6: 1 to 16 test documents each).
 *
 * `groups:` keeps the listed groups, or, as `{ name: [groups…] }`, renames groups into named
 * groups of groups (a document is kept once per name listing its group); an unknown group is an
 * error listing the known ones.
 *
 * `stream` gives the documents one at a time (files read line by line, Brown file by file) and
 * `splitter` decides their splits as they come: `Packing.load` tokenizes from them and never holds
 * the corpus's text. `documents` collects a split for callers that want texts (tests, small data).
 *
 * @since 0.1.0
 */
import { Stage } from "@crucible/core"
import { Effect, Schema, Stream } from "effect"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as path from "node:path"
import * as readline from "node:readline"
import * as Brown from "./Brown.ts"
import { describe, TextError } from "./TextError.ts"

/** @category schemas */
export const TextParam = Schema.Union([
  Schema.Literal("brown"),
  Schema.Struct({ text: Schema.String }),
  Schema.Struct({ jsonl: Schema.String, field: Schema.optional(Schema.String), group_field: Schema.optional(Schema.String) })
])
export type TextParam = typeof TextParam.Type

/** @category schemas */
export const TextSplit = Schema.Literals(["train", "val", "test", "all"])
export type TextSplit = typeof TextSplit.Type

/** @category schemas */
export const GroupsParam = Schema.Union([Schema.Array(Schema.String), Schema.Record(Schema.String, Schema.Array(Schema.String))])
export type GroupsParam = typeof GroupsParam.Type

/** A document: its id (Brown: `ca01`; text: `path#paragraph`; JSONL: `file:line`), group and text. @category models */
export interface Document {
  readonly id: string
  readonly group: string
  readonly text: string
}

/** Bumped when the split rule changes: part of Brown's `builtin` read, so the stage keys change. @category constants */
export const SPLIT_VERSION = 1

/** The split period: k % 5 == 4 is test, k % 5 == 3 is val. @category constants */
export const SPLIT_EVERY = 5

/** Brown's `builtin` read: the package's version and the split's. @category constants */
export const BROWN_VERSION = `${Brown.VERSION}+split${SPLIT_VERSION}`

/** What a `data:` param reads, for the stage's key. @category reads */
export const reads = (param: TextParam): ReadonlyArray<Stage.Read> =>
  param === "brown" ? [{ builtin: BROWN_VERSION }] : [{ file: "text" in param ? param.text : param.jsonl }]

/** The `data:` field of a stage, defaulting to `brown`. @category schemas */
export const textField = (description = "the text: brown, { text: file or folder }, or { jsonl: file, field?, group_field? }") =>
  TextParam.annotate({ description }).pipe(Stage.withDefault<typeof TextParam>("brown"))

/** The `split:` field of a stage, with its default. @category schemas */
export const splitField = (defaultSplit: TextSplit, description: string) => TextSplit.annotate({ description }).pipe(Stage.withDefault<typeof TextSplit>(defaultSplit))

/** The optional `groups:` field of a stage. @category schemas */
export const groupsField = (description = "keep these groups (genres), or named groups of groups ({ press: [news, editorial, reviews] })") =>
  Schema.optional(GroupsParam.annotate({ description }))

/** The split of the k-th document (0-based, source order) of a group of n. @category splitting */
export const splitOf = (k: number, n: number): Exclude<TextSplit, "all"> => {
  if (k % SPLIT_EVERY === SPLIT_EVERY - 1 || (n < SPLIT_EVERY && k === n - 1)) return "test"
  if (k % SPLIT_EVERY === SPLIT_EVERY - 2) return "val"
  return "train"
}

/** A short name for messages and block names: `brown`, the text path's base name, the JSONL file's. @category reads */
export const nameOf = (param: TextParam): string => (param === "brown" ? "brown" : path.basename("text" in param ? param.text : param.jsonl))

const stem = (file: string) => path.basename(file, path.extname(file))

const paragraphs = (text: string): ReadonlyArray<string> =>
  text
    .replace(/\r\n?/g, "\n")
    .split(/\n[ \t]*\n/)
    .map((p) => p.trim())
    .filter((p) => p.length > 0)

const TEXT_EXTENSIONS = new Set([".txt", ".md"])

// The text files under `folder`, relative paths sorted (code-unit order, so it is the same on every machine).
const listTextFiles = (folder: string): Effect.Effect<ReadonlyArray<string>, TextError> =>
  Effect.tryPromise({
    try: async () => {
      const entries = await fsp.readdir(folder, { recursive: true, withFileTypes: true })
      return entries
        .filter((e) => e.isFile() && TEXT_EXTENSIONS.has(path.extname(e.name).toLowerCase()))
        .map((e) => path.relative(folder, path.join(e.parentPath, e.name)))
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    },
    catch: (cause) => new TextError({ source: folder, detail: `cannot list the folder: ${describe(cause)}` })
  })

// An async iterable that starts a fresh generator each time it is iterated (a stream may be run twice).
const iterable = <A>(make: () => AsyncGenerator<A>): AsyncIterable<A> => ({ [Symbol.asyncIterator]: make })

const asTextError = (source: string, what: string) => (cause: unknown) =>
  cause instanceof TextError ? cause : new TextError({ source, detail: `cannot read ${what}: ${describe(cause)}` })

// The lines of a file, read in chunks: `\n`, `\r\n` and a lone `\r` end a line (readline's rule, the same
// as normalising `\r\n?` to `\n` first).
const linesOf = async function* (file: string): AsyncGenerator<string> {
  const input = fs.createReadStream(file, { encoding: "utf8" })
  const lines = readline.createInterface({ input, crlfDelay: Infinity })
  try {
    yield* lines
  } finally {
    lines.close()
    input.destroy()
  }
}

const BLANK = /^[ \t]*$/

// A file's paragraphs as they are read: lines up to a blank one (spaces and tabs only), trimmed, empty
// ones skipped. The same paragraphs as splitting the whole text at `\n[ \t]*\n` and trimming: a piece of
// that split differs from a run of non-blank lines only by blank lines at its ends, which trimming drops.
const paragraphsOf = async function* (file: string): AsyncGenerator<string> {
  let lines: Array<string> = []
  for await (const line of linesOf(file)) {
    if (!BLANK.test(line)) {
      lines.push(line)
      continue
    }
    const paragraph = lines.join("\n").trim()
    lines = []
    if (paragraph.length > 0) yield paragraph
  }
  const paragraph = lines.join("\n").trim()
  if (paragraph.length > 0) yield paragraph
}

const textStream = (root: string): Stream.Stream<Document, TextError> =>
  Stream.unwrap(
    Effect.gen(function* () {
      const stat = yield* Effect.tryPromise({
        try: () => fsp.stat(root),
        catch: (cause) => new TextError({ source: root, detail: `cannot read the text data (a .txt/.md file or a folder of them): ${describe(cause)}` })
      })
      const files = stat.isDirectory() ? yield* listTextFiles(root) : [path.basename(root)]
      const base = stat.isDirectory() ? root : path.dirname(root)
      if (files.length === 0) return yield* new TextError({ source: root, detail: "the folder holds no .txt or .md file" })
      return Stream.flatMap(Stream.fromIterable(files), (relative) => {
        const parts = relative.split(path.sep)
        const group = parts.length > 1 ? parts[0]! : stem(relative)
        const id = parts.join("/")
        const file = path.join(base, relative)
        return Stream.fromAsyncIterable(
          iterable(async function* () {
            let i = 0
            for await (const text of paragraphsOf(file)) yield { id: `${id}#${i++}`, group, text }
          }),
          asTextError(file, "the text file")
        )
      })
    })
  )

const jsonlStream = (file: string, field: string, groupField: string | undefined): Stream.Stream<Document, TextError> =>
  Stream.fromAsyncIterable(
    iterable(async function* () {
      const group = stem(file)
      const name = path.basename(file)
      let n = 0
      let count = 0
      for await (const line of linesOf(file)) {
        n++
        if (line.trim().length === 0) continue
        let value: unknown
        try {
          value = JSON.parse(line)
        } catch (cause) {
          throw new TextError({ source: file, line: n, detail: `not JSON: ${describe(cause)}` })
        }
        if (typeof value !== "object" || value === null || Array.isArray(value)) throw new TextError({ source: file, line: n, detail: "expected a JSON object per line" })
        const record = value as Record<string, unknown>
        const text = record[field]
        if (typeof text !== "string") {
          throw new TextError({ source: file, line: n, detail: `no string field "${field}" (fields: ${Object.keys(record).join(", ") || "none"}); set \`field:\` to the one holding the text` })
        }
        let docGroup = group
        if (groupField !== undefined) {
          const g = record[groupField]
          if (typeof g !== "string" && typeof g !== "number") throw new TextError({ source: file, line: n, detail: `no string field "${groupField}" (the \`group_field:\`)` })
          docGroup = String(g)
        }
        count++
        yield { id: `${name}:${n}`, group: docGroup, text }
      }
      if (count === 0) throw new TextError({ source: file, detail: "the file holds no document" })
    }),
    asTextError(file, "the JSONL file")
  )

/**
 * Every document the param names, in source order, one at a time: text files and JSONL are read
 * line by line, Brown file by file, so the corpus's text is never held whole (a single paragraph
 * or JSONL line is). Each run of the stream reads the files again.
 *
 * @category reading
 */
export const stream = (param: TextParam, resolvePath: (p: string) => string): Stream.Stream<Document, TextError> => {
  if (param === "brown") return Brown.stream()
  if ("text" in param) return textStream(resolvePath(param.text))
  return jsonlStream(resolvePath(param.jsonl), param.field ?? "text", param.group_field)
}

/** Every document the param names, in source order, held in memory (uncached; small data and tests). @category reading */
export const readAll = (param: TextParam, resolvePath: (p: string) => string): Effect.Effect<ReadonlyArray<Document>, TextError> => Stream.runCollect(stream(param, resolvePath))

/** What {@link splitter} calls back with: the item, its split, and its index k within its group. @category splitting */
export type SplitCallback<A> = (item: A, split: Exclude<TextSplit, "all">, k: number) => void

/**
 * The split rule ({@link splitOf}) applied as documents come, without knowing a group's size in
 * advance: only a group of fewer than 5 documents needs its size (its last one is `test`), so a
 * group's first four items wait until its fifth arrives (then they are `train`, `train`, `train`,
 * `val`) or `end` is called (then the size is known). Every later item is decided on arrival.
 * Items of a group are called back in their order; at most four items a group are held.
 *
 * @category splitting
 */
export const splitter = <A>(onSplit: SplitCallback<A>): { readonly push: (group: string, item: A) => void; readonly end: () => void; readonly groups: () => ReadonlyArray<string> } => {
  const counts = new Map<string, number>()
  const waiting = new Map<string, Array<A>>()
  return {
    push: (group, item) => {
      const k = counts.get(group) ?? 0
      counts.set(group, k + 1)
      if (k >= SPLIT_EVERY) return onSplit(item, splitOf(k, Infinity), k)
      const held = waiting.get(group) ?? []
      if (k < SPLIT_EVERY - 1) {
        held.push(item)
        waiting.set(group, held)
        return
      }
      waiting.delete(group)
      held.forEach((h, j) => onSplit(h, splitOf(j, Infinity), j))
      onSplit(item, splitOf(k, Infinity), k)
    },
    end: () => {
      for (const [group, held] of waiting) held.forEach((h, j) => onSplit(h, splitOf(j, counts.get(group)!), j))
      waiting.clear()
    },
    /** Every group pushed, in order of first appearance. */
    groups: () => [...counts.keys()]
  }
}

interface Splits {
  readonly all: ReadonlyArray<Document>
  readonly train: ReadonlyArray<Document>
  readonly val: ReadonlyArray<Document>
  readonly test: ReadonlyArray<Document>
  /** The groups in order of first appearance. */
  readonly groups: ReadonlyArray<string>
}

const splitAll = (docs: ReadonlyArray<Document>): Splits => {
  const sizes = new Map<string, number>()
  for (const d of docs) sizes.set(d.group, (sizes.get(d.group) ?? 0) + 1)
  const seen = new Map<string, number>()
  const parts: Record<"train" | "val" | "test", Array<Document>> = { train: [], val: [], test: [] }
  for (const d of docs) {
    const k = seen.get(d.group) ?? 0
    seen.set(d.group, k + 1)
    parts[splitOf(k, sizes.get(d.group)!)].push(d)
  }
  return { all: docs, ...parts, groups: [...sizes.keys()] }
}

/** The groups a `groups:` param names, as `[name, members]`: a list names each group alone, a map names groups of groups. @category splitting */
export const namedGroups = (groups: GroupsParam): ReadonlyArray<readonly [string, ReadonlyArray<string>]> =>
  Array.isArray(groups)
    ? (groups as ReadonlyArray<string>).map((g) => [g, [g]] as const)
    : Object.entries(groups as Readonly<Record<string, ReadonlyArray<string>>>)

/** {@link namedGroups}, with the members checked against `known`. @category splitting */
export const resolveGroups = (groups: GroupsParam, known: ReadonlyArray<string>, source: string): Effect.Effect<ReadonlyArray<readonly [string, ReadonlyArray<string>]>, TextError> => {
  const named = namedGroups(groups)
  const unknown = [...new Set(named.flatMap(([, members]) => members.filter((m) => !known.includes(m))))]
  if (unknown.length > 0) {
    return Effect.fail(new TextError({ source, detail: `unknown group${unknown.length > 1 ? "s" : ""} ${unknown.map((g) => `"${g}"`).join(", ")}; the groups are: ${known.join(", ")}` }))
  }
  const empty = named.find(([, members]) => members.length === 0)
  if (empty !== undefined) return Effect.fail(new TextError({ source, detail: `the named group "${empty[0]}" lists no group; the groups are: ${known.join(", ")}` }))
  return Effect.succeed(named)
}

/**
 * The documents of a split, filtered (and renamed) by `groups`: without `groups`, in source
 * order; with them, group by group in the order given, each in source order. Reads the whole
 * source each call and holds its text: the stages use the streamed path (`Packing.load`); this one
 * is the plain reading of the split rule that tests check the streamed one against.
 *
 * @category reading
 */
export const documents = (param: TextParam, split: TextSplit, groups: GroupsParam | undefined, resolvePath: (p: string) => string): Effect.Effect<ReadonlyArray<Document>, TextError> =>
  Effect.gen(function* () {
    const splits = splitAll(yield* readAll(param, resolvePath))
    const docs = splits[split]
    if (groups === undefined) return docs
    const named = yield* resolveGroups(groups, splits.groups, nameOf(param))
    return named.flatMap(([name, members]) => docs.filter((d) => members.includes(d.group)).map((d) => (d.group === name ? d : { ...d, group: name })))
  })
