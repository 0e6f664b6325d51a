/**
 * Token blocks for language-model training and evaluation: documents tokenized (EOS appended when
 * the tokenizer has one), concatenated group by group, cut into rows of `seqLen + 1` tokens
 * (stride `seqLen + 1`, no overlap: a row's inputs are its first `seqLen` tokens, its targets the
 * last `seqLen`). A group's tail shorter than a row is dropped, and a block never mixes groups.
 * `maxBlocksPerGroup` keeps at most that many blocks of each group, spread evenly over it
 * (block ⌊i·count/max⌋), so a cap still samples the whole group.
 *
 * `load` streams: documents are tokenized as they are read (`TextSource.stream`, `packStream`) and
 * only token ids are held, 2 bytes an id when the tokenizer's vocabulary fits 65,536 (4 otherwise),
 * in chunks that appending never copies; the blocks are then `Int32Array` (4 bytes a kept id: what
 * the LM code reads). Peak memory is about 6 bytes a kept token, not the text (see README.md).
 *
 * @since 0.1.0
 */
import { RunCache } from "@crucible/core"
import { Effect, Stream } from "effect"
import type { TextError } from "./TextError.ts"
import * as TextSource from "./TextSource.ts"
import type { TextTokenizer } from "./TextTokenizer.ts"

/** @category models */
export interface TokenBlocks {
  /** For messages and metrics, e.g. `brown/test[news]`. */
  readonly name: string
  readonly seqLen: number
  readonly count: number
  /** `count × (seqLen + 1)` ids: row i is block i. */
  readonly tokens: Int32Array
  /** The groups, in order of first appearance in the documents. */
  readonly groups: ReadonlyArray<string>
  /** Per block, its group's index in `groups`. */
  readonly groupOf: Int32Array
}

/** Options of {@link pack}. @category models */
export interface PackOptions {
  /** At most this many blocks per group, spread evenly. */
  readonly maxBlocksPerGroup?: number | undefined
  /** The blocks' name (default `text`). */
  readonly name?: string | undefined
}

// A group's token ids as they come, in chunks (appending never copies what is held), 2 bytes an id when
// the tokenizer's ids fit (vocabulary ≤ 65,536), else 4. Chunks grow from 256 to 1 Mi ids, so a small
// group costs little and a large one at most one part-filled chunk.
interface Ids {
  readonly chunks: Array<Uint16Array | Int32Array>
  /** Ids held in all. */
  length: number
  /** Ids in the last chunk. */
  filled: number
}

const FIRST_CHUNK = 1 << 8
const LAST_CHUNK = 1 << 20
const NARROW = 1 << 16

const emptyIds = (): Ids => ({ chunks: [], length: 0, filled: 0 })

const append = (ids: Ids, values: ArrayLike<number>, narrow: boolean): void => {
  let from = 0
  while (from < values.length) {
    let chunk = ids.chunks[ids.chunks.length - 1]
    if (chunk === undefined || ids.filled === chunk.length) {
      const size = Math.min(LAST_CHUNK, FIRST_CHUNK * 2 ** ids.chunks.length)
      chunk = narrow ? new Uint16Array(size) : new Int32Array(size)
      ids.chunks.push(chunk)
      ids.filled = 0
    }
    const n = Math.min(chunk.length - ids.filled, values.length - from)
    for (let i = 0; i < n; i++) chunk[ids.filled + i] = values[from + i]!
    from += n
    ids.filled += n
    ids.length += n
  }
}

// A stretch of a buffer: a document's ids, or a whole group's. A group is a list of them, in document order.
interface Segment {
  readonly ids: Ids
  readonly from: number
  readonly length: number
}

const whole = (ids: Ids): Segment => ({ ids, from: 0, length: ids.length })

// Copies ids [from, from + n) of one buffer into `out` at `at`.
const read = (ids: Ids, from: number, n: number, out: Int32Array, at: number): void => {
  let start = 0
  for (let c = 0; c < ids.chunks.length && n > 0; c++) {
    const chunk = ids.chunks[c]!
    const used = c === ids.chunks.length - 1 ? ids.filled : chunk.length
    if (from < start + used) {
      const offset = from - start
      const take = Math.min(used - offset, n)
      out.set(chunk.subarray(offset, offset + take), at)
      at += take
      n -= take
      from += take
    }
    start += used
  }
}

// Tokenizes a document into buffers (EOS appended unless it ends with it); returns the ids appended to each.
const tokenize = (tokenizer: TextTokenizer) => {
  const narrow = tokenizer.vocabSize <= NARROW
  return (text: string, targets: ReadonlyArray<Ids>): number => {
    const encoded = tokenizer.encode(text)
    if (narrow) {
      for (const id of encoded) {
        // vocabSize bounds the ids (TextTokenizer: the largest id + 1); a larger one would wrap silently.
        if (id < 0 || id >= NARROW) throw new RangeError(`${tokenizer.source}: id ${id} outside its vocabulary of ${tokenizer.vocabSize}`)
      }
    }
    const eos = tokenizer.eos !== undefined && encoded[encoded.length - 1] !== tokenizer.eos
    for (const ids of targets) {
      append(ids, encoded, narrow)
      if (eos) append(ids, [tokenizer.eos!], narrow)
    }
    return encoded.length + (eos ? 1 : 0)
  }
}

// The blocks of named groups, each the concatenation of its segments: rows of `seqLen + 1`, the tail
// dropped, at most `maxBlocksPerGroup` a group spread evenly. A group's ids are let go once its rows are copied.
const cut = (groups: Array<readonly [string, Array<Segment>]>, seqLen: number, options: PackOptions): TokenBlocks => {
  const row = seqLen + 1
  const counts = groups.map(([, segments]) => Math.floor(segments.reduce((n, p) => n + p.length, 0) / row))
  const kept = counts.map((c) => (options.maxBlocksPerGroup === undefined ? c : Math.min(c, options.maxBlocksPerGroup)))
  const count = kept.reduce((a, b) => a + b, 0)
  const tokens = new Int32Array(count * row)
  const groupOf = new Int32Array(count)
  let at = 0
  groups.forEach(([, segments], g) => {
    const starts = new Float64Array(segments.length + 1)
    segments.forEach((p, i) => (starts[i + 1] = starts[i]! + p.length))
    for (let i = 0; i < kept[g]!; i++, at++) {
      let from = Math.floor((i * counts[g]!) / kept[g]!) * row
      // The last segment starting at or before `from` (binary search: a group may have a segment a document).
      let lo = 0
      let hi = segments.length - 1
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1
        if (starts[mid]! <= from) lo = mid
        else hi = mid - 1
      }
      let n = row
      let to = at * row
      for (let s = lo; n > 0; s++) {
        const segment = segments[s]!
        const offset = from - starts[s]!
        const take = Math.min(segment.length - offset, n)
        read(segment.ids, segment.from + offset, take, tokens, to)
        to += take
        n -= take
        from += take
      }
      groupOf[at] = g
    }
    segments.length = 0
  })
  return { name: options.name ?? "text", seqLen, count, tokens, groups: groups.map(([name]) => name), groupOf }
}

const checkSeqLen = (seqLen: number) => {
  if (!Number.isInteger(seqLen) || seqLen < 1) throw new RangeError(`seqLen must be a positive integer, got ${seqLen}`)
}

/** Packs documents into blocks (see the module doc). @category packing */
export const pack = (docs: ReadonlyArray<TextSource.Document>, tokenizer: TextTokenizer, seqLen: number, options: PackOptions = {}): TokenBlocks => {
  checkSeqLen(seqLen)
  const add = tokenize(tokenizer)
  const byGroup = new Map<string, Ids>()
  for (const d of docs) {
    let ids = byGroup.get(d.group)
    if (ids === undefined) {
      ids = emptyIds()
      byGroup.set(d.group, ids)
    }
    add(d.text, [ids])
  }
  return cut([...byGroup].map(([group, ids]) => [group, [whole(ids)]] as const), seqLen, options)
}

// Where the documents of one group of the blocks go. A group of one source group (or of all, without
// `groups:`) is one buffer, its documents arriving in source order. A named group of several has a buffer
// per member and a segment per document: members' documents may be decided out of source order (the split
// waits on a group's first four), so the segments are put back in source order at the end.
interface Entry {
  readonly name: string
  readonly first: number
  readonly buffers: Map<string, Ids>
  readonly segments: Array<Segment & { readonly position: number }> | undefined
}

/**
 * The blocks of a split of a document stream, filtered (and renamed) by `groups` like
 * `TextSource.documents`, tokenized as the documents come: the same blocks as `pack` of
 * `documents(…)`, holding only token ids (and the text of at most four waiting documents a group,
 * see `TextSource.splitter`), never the corpus's text. `source` names the data in errors.
 *
 * @category packing
 */
export const packStream = (
  documents: Stream.Stream<TextSource.Document, TextError>,
  split: TextSource.TextSplit,
  groups: TextSource.GroupsParam | undefined,
  source: string,
  tokenizer: TextTokenizer,
  seqLen: number,
  options: PackOptions = {}
): Effect.Effect<TokenBlocks, TextError> =>
  Effect.gen(function* () {
    checkSeqLen(seqLen)
    const add = tokenize(tokenizer)
    // The `groups:` entries (name, members); without them, one entry per group, made as it first appears.
    const named = groups === undefined ? undefined : TextSource.namedGroups(groups)
    const entries = new Map<string | number, Entry>()
    const targetsOf = new Map<string, Set<number>>()
    named?.forEach(([, members], e) => members.forEach((m) => targetsOf.set(m, (targetsOf.get(m) ?? new Set()).add(e))))
    interface Item { readonly group: string; readonly position: number; readonly text: string | undefined }
    const take = (item: Item) => {
      if (item.text === undefined) return
      const keys: ReadonlyArray<string | number> = named === undefined ? [item.group] : [...targetsOf.get(item.group)!]
      const targets = keys.map((key) => {
        let entry = entries.get(key)
        if (entry === undefined) {
          const several = typeof key === "number" && new Set(named![key]![1]).size > 1
          entry = { name: typeof key === "number" ? named![key]![0] : key, first: item.position, buffers: new Map(), segments: several ? [] : undefined }
          entries.set(key, entry)
        }
        let ids = entry.buffers.get(item.group)
        if (ids === undefined) {
          ids = emptyIds()
          entry.buffers.set(item.group, ids)
        }
        return [entry, ids] as const
      })
      const from = targets.map(([, ids]) => ids.length)
      const length = add(item.text, targets.map(([, ids]) => ids))
      targets.forEach(([entry, ids], t) => entry.segments?.push({ ids, from: from[t]!, length, position: item.position }))
    }
    const splits = TextSource.splitter<Item>((item, s) => {
      if (s === split) take(item)
    })
    let position = 0
    yield* Stream.runForEach(documents, (d) =>
      Effect.sync(() => {
        // Only the documents of kept groups keep their text while they wait for their split.
        const item: Item = { group: d.group, position: position++, text: named === undefined || targetsOf.has(d.group) ? d.text : undefined }
        if (split !== "all") return splits.push(d.group, item)
        splits.push(d.group, { ...item, text: undefined })
        take(item)
      })
    )
    splits.end()
    if (groups !== undefined) yield* TextSource.resolveGroups(groups, splits.groups(), source)
    const segmentsOf = (entry: Entry): Array<Segment> =>
      entry.segments === undefined ? [...entry.buffers.values()].map(whole) : entry.segments.sort((a, b) => a.position - b.position)
    // Groups in the order `documents` gives them: without `groups`, by their first document of the
    // split; with them, entry by entry, the entries of one name concatenated.
    const ordered: Array<readonly [string, Array<Segment>]> = []
    if (named === undefined) {
      for (const entry of [...entries.values()].sort((a, b) => a.first - b.first)) ordered.push([entry.name, segmentsOf(entry)])
    } else {
      named.forEach(([name], e) => {
        const entry = entries.get(e)
        if (entry === undefined) return
        const same = ordered.find(([n]) => n === name)
        if (same === undefined) ordered.push([name, segmentsOf(entry)])
        else same[1].push(...segmentsOf(entry))
      })
    }
    entries.clear()
    return cut(ordered, seqLen, options)
  })

/** The blocks' name: `brown/test`, with the groups when chosen: `brown/test[news,learned]`. @category packing */
export const nameOf = (param: TextSource.TextParam, split: TextSource.TextSplit, groups: TextSource.GroupsParam | undefined): string => {
  const chosen = groups === undefined ? "" : `[${TextSource.namedGroups(groups).map(([name]) => name).join(",")}]`
  return `${TextSource.nameOf(param)}/${split}${chosen}`
}

/** The documents a stage's text params name, streamed and packed ({@link packStream}); only the blocks are memoised for the run (`RunCache`). @category packing */
export const load = (
  param: TextSource.TextParam,
  split: TextSource.TextSplit,
  groups: TextSource.GroupsParam | undefined,
  tokenizer: TextTokenizer,
  seqLen: number,
  resolvePath: (p: string) => string,
  options: { readonly maxBlocksPerGroup?: number | undefined } = {}
): Effect.Effect<TokenBlocks, TextError> => {
  const resolved = param === "brown" ? param : "text" in param ? { text: resolvePath(param.text) } : { ...param, jsonl: resolvePath(param.jsonl) }
  const key = `crucible/blocks:${JSON.stringify({ data: resolved, split, groups: groups ?? null, tokenizer: tokenizer.source, seqLen, max: options.maxBlocksPerGroup ?? null })}`
  return RunCache.memo(
    key,
    packStream(TextSource.stream(param, resolvePath), split, groups, TextSource.nameOf(param), tokenizer, seqLen, { maxBlocksPerGroup: options.maxBlocksPerGroup, name: nameOf(param, split, groups) }),
    { bytes: (b) => b.tokens.byteLength + b.groupOf.byteLength }
  )
}
