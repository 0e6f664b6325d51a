/**
 * Token blocks for language-model training and evaluation: documents tokenized (EOS appended when
 * the tokenizer has one), concatenated group by group, cut into rows of `seqLen + 1` tokens
 * (stride `seqLen + 1`, no overlap: a row's inputs are its first `seqLen` tokens, its targets the
 * last `seqLen`). A group's tail shorter than a row is dropped, and a block never mixes groups.
 * `maxBlocksPerGroup` keeps at most that many blocks of each group, spread evenly over it
 * (block ⌊i·count/max⌋), so a cap still samples the whole group.
 *
 * @since 0.1.0
 */
import { RunCache } from "@crucible/core"
import { Effect } from "effect"
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

// A growing Int32Array (a group's ids), so a group's tokens are held once, not as a JS array.
const grow = (buffer: Int32Array<ArrayBuffer>, needed: number): Int32Array<ArrayBuffer> => {
  if (needed <= buffer.length) return buffer
  const next = new Int32Array(Math.max(needed, buffer.length * 2))
  next.set(buffer)
  return next
}

/** Packs documents into blocks (see the module doc). @category packing */
export const pack = (docs: ReadonlyArray<TextSource.Document>, tokenizer: TextTokenizer, seqLen: number, options: PackOptions = {}): TokenBlocks => {
  if (!Number.isInteger(seqLen) || seqLen < 1) throw new RangeError(`seqLen must be a positive integer, got ${seqLen}`)
  const row = seqLen + 1
  const order: Array<string> = []
  const byGroup = new Map<string, Array<TextSource.Document>>()
  for (const d of docs) {
    let list = byGroup.get(d.group)
    if (list === undefined) {
      list = []
      byGroup.set(d.group, list)
      order.push(d.group)
    }
    list.push(d)
  }
  const rows: Array<{ readonly group: number; readonly ids: Int32Array }> = []
  order.forEach((group, g) => {
    let ids: Int32Array<ArrayBuffer> = new Int32Array(1024)
    let length = 0
    for (const d of byGroup.get(group)!) {
      const encoded = tokenizer.encode(d.text)
      const eos = tokenizer.eos !== undefined && encoded[encoded.length - 1] !== tokenizer.eos ? 1 : 0
      ids = grow(ids, length + encoded.length + eos)
      ids.set(encoded, length)
      length += encoded.length
      if (eos === 1) ids[length++] = tokenizer.eos!
    }
    const count = Math.floor(length / row)
    const kept = options.maxBlocksPerGroup === undefined ? count : Math.min(count, options.maxBlocksPerGroup)
    const blocks = new Int32Array(kept * row)
    for (let i = 0; i < kept; i++) {
      const from = Math.floor((i * count) / kept)
      blocks.set(ids.subarray(from * row, (from + 1) * row), i * row)
    }
    rows.push({ group: g, ids: blocks })
  })
  const count = rows.reduce((n, r) => n + r.ids.length / row, 0)
  const tokens = new Int32Array(count * row)
  const groupOf = new Int32Array(count)
  let at = 0
  for (const r of rows) {
    tokens.set(r.ids, at * row)
    groupOf.fill(r.group, at, at + r.ids.length / row)
    at += r.ids.length / row
  }
  return { name: options.name ?? "text", seqLen, count, tokens, groups: order, groupOf }
}

/** The blocks' name: `brown/test`, with the groups when chosen: `brown/test[news,learned]`. @category packing */
export const nameOf = (param: TextSource.TextParam, split: TextSource.TextSplit, groups: TextSource.GroupsParam | undefined): string => {
  const chosen = groups === undefined ? "" : `[${(Array.isArray(groups) ? (groups as ReadonlyArray<string>) : Object.keys(groups)).join(",")}]`
  return `${TextSource.nameOf(param)}/${split}${chosen}`
}

/** The documents a stage's text params name, packed; memoised for the run (`RunCache`). @category packing */
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
    Effect.map(TextSource.documents(param, split, groups, resolvePath), (docs) => pack(docs, tokenizer, seqLen, { maxBlocksPerGroup: options.maxBlocksPerGroup, name: nameOf(param, split, groups) })),
    { bytes: (b) => b.tokens.byteLength + b.groupOf.byteLength }
  )
}
