/**
 * Parsing and validation of a safetensors header, as the format's specification defines it:
 * 8 bytes of little-endian u64 header length, a JSON object of tensors
 * `{ name: { dtype, shape, data_offsets: [begin, end] } }` (offsets relative to the data that
 * follows the header) plus an optional `__metadata__` string map, padded with spaces.
 *
 * Every rule of the reference implementation is checked, so a file that passes here loads there.
 *
 * @since 0.1.0
 */
import { byteSize, type DType, DTypes } from "../../tensor/DType.ts"
import { numel } from "../../tensor/TensorRef.ts"

/** One tensor's entry in the header. @category models */
export interface HeaderEntry {
  readonly name: string
  readonly dtype: DType
  readonly shape: ReadonlyArray<number>
  /** Offsets relative to the start of the data section. */
  readonly begin: number
  readonly end: number
}

/** @category models */
export interface Header {
  readonly entries: ReadonlyArray<HeaderEntry>
  readonly metadata: Readonly<Record<string, string>>
  /** Bytes before the data section: 8 + header length. */
  readonly dataStart: number
}

/** The reference implementation refuses headers above 100 MB; so do we, before reading them. */
export const MAX_HEADER_BYTES = 100_000_000

/** Returns the problem with a header length, or undefined when it is acceptable. */
export const checkHeaderLength = (length: bigint, fileSize: number): string | undefined => {
  if (length > BigInt(MAX_HEADER_BYTES)) return `header length ${length} exceeds the 100 MB limit (a corrupt or hostile file)`
  if (length < 2n) return `header length ${length} is too small for a JSON object`
  if (Number(length) + 8 > fileSize) return `header length ${length} runs past the end of the file (${fileSize} bytes)`
  return undefined
}

/**
 * Parses and validates header JSON. Returns the header or a list of problems (all of them, so a
 * user fixing a writer sees every fault at once).
 */
export const parse = (json: string, headerLength: number, fileSize: number): Header | { readonly problems: ReadonlyArray<string> } => {
  if (!json.startsWith("{")) return { problems: ["header does not start with '{'"] }
  const duplicate = firstDuplicateKey(json)
  if (duplicate !== undefined) return { problems: [`duplicate tensor name "${duplicate}" in header`] }
  let raw: unknown
  try {
    raw = JSON.parse(json)
  } catch (e) {
    return { problems: [`header is not valid JSON: ${(e as Error).message}`] }
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return { problems: ["header is not a JSON object"] }
  const problems: Array<string> = []
  const entries: Array<HeaderEntry> = []
  let metadata: Record<string, string> = {}
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (name === "__metadata__") {
      const m = parseMetadata(value)
      if (typeof m === "string") problems.push(m)
      else metadata = m
      continue
    }
    const entry = parseEntry(name, value)
    if (typeof entry === "string") problems.push(entry)
    else entries.push(entry)
  }
  const dataLength = fileSize - 8 - headerLength
  for (const p of checkLayout(entries, dataLength)) problems.push(p) // not push(...): one per tensor can overflow the stack
  if (problems.length > 0) return { problems }
  // Readers and writers keep the order of the data section, as the reference does.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end)
  return { entries, metadata, dataStart: 8 + headerLength }
}

const parseMetadata = (value: unknown): Record<string, string> | string => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "__metadata__ is not an object of strings"
  for (const [k, v] of Object.entries(value)) if (typeof v !== "string") return `__metadata__["${k}"] is not a string`
  return value as Record<string, string>
}

const parseEntry = (name: string, value: unknown): HeaderEntry | string => {
  if (typeof value !== "object" || value === null) return `tensor "${name}": entry is not an object`
  const { dtype, shape, data_offsets } = value as Record<string, unknown>
  if (typeof dtype !== "string" || !(DTypes as ReadonlyArray<string>).includes(dtype)) return `tensor "${name}": unknown dtype ${JSON.stringify(dtype)}`
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return `tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`
  if (!Array.isArray(data_offsets) || data_offsets.length !== 2 || !data_offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) return `tensor "${name}": data_offsets ${JSON.stringify(data_offsets)} is not [begin, end]`
  const [begin, end] = data_offsets as [number, number]
  if (end < begin) return `tensor "${name}": data_offsets end ${end} is before begin ${begin}`
  const expected = numel(shape) * byteSize[dtype as DType]
  if (!Number.isSafeInteger(expected)) return `tensor "${name}": shape [${shape.join(", ")}] has more elements than any file can hold`
  if (end - begin !== expected) return `tensor "${name}": ${end - begin} bytes stored but dtype ${dtype} × shape [${shape.join(", ")}] needs ${expected}`
  return { name, dtype: dtype as DType, shape, begin, end }
}

/** Tensors must tile the data section exactly: in range, no overlap, no hole. */
const checkLayout = (entries: ReadonlyArray<HeaderEntry>, dataLength: number): Array<string> => {
  const problems: Array<string> = []
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end)
  let cursor = 0
  for (const e of sorted) {
    if (e.end > dataLength) problems.push(`tensor "${e.name}": data_offsets [${e.begin}, ${e.end}] run past the end of the data (${dataLength} bytes; the file is truncated?)`)
    else if (e.begin < cursor) problems.push(`tensor "${e.name}": data_offsets [${e.begin}, ${e.end}] overlap the previous tensor (ends at ${cursor})`)
    else if (e.begin > cursor) problems.push(`tensor "${e.name}": a gap of ${e.begin - cursor} unused bytes before it at offset ${cursor}`)
    cursor = Math.max(cursor, e.end)
  }
  if (problems.length === 0 && cursor < dataLength) problems.push(`${dataLength - cursor} bytes after the last tensor are not described by the header`)
  return problems
}

/**
 * JSON.parse keeps the last of two equal keys silently; the format forbids duplicates, so we
 * scan the top-level keys ourselves. Strings are skipped with their escapes.
 */
const firstDuplicateKey = (json: string): string | undefined => {
  const seen = new Set<string>()
  let depth = 0
  let expectKey = false
  for (let i = 0; i < json.length; i++) {
    const c = json[i]
    if (c === '"') {
      let j = i + 1
      while (j < json.length && json[j] !== '"') j += json[j] === "\\" ? 2 : 1
      if (depth === 1 && expectKey) {
        let key: string
        try { key = JSON.parse(json.slice(i, j + 1)) as string } catch { return undefined }
        if (seen.has(key)) return key
        seen.add(key)
        expectKey = false
      }
      i = j
    } else if (c === "{" || c === "[") {
      depth++
      if (depth === 1) expectKey = true
    } else if (c === "}" || c === "]") depth--
    else if (c === "," && depth === 1) expectKey = true
  }
  return undefined
}

/** Serialises a header the way the reference writer does, padded to a multiple of 8 bytes. */
export const serialize = (
  entries: ReadonlyArray<Pick<HeaderEntry, "name" | "dtype" | "shape">>,
  metadata: Readonly<Record<string, string>>
): { readonly header: Uint8Array<ArrayBuffer>; readonly offsets: ReadonlyArray<readonly [number, number]> } => {
  const object: Record<string, unknown> = {}
  if (Object.keys(metadata).length > 0) object.__metadata__ = metadata
  const offsets: Array<readonly [number, number]> = []
  let cursor = 0
  for (const e of entries) {
    const size = numel(e.shape) * byteSize[e.dtype]
    offsets.push([cursor, cursor + size])
    object[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [cursor, cursor + size] }
    cursor += size
  }
  const json = new TextEncoder().encode(JSON.stringify(object))
  const padded = Math.ceil(json.byteLength / 8) * 8
  const header = new Uint8Array(8 + padded).fill(0x20, 8 + json.byteLength)
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true)
  header.set(json, 8)
  return { header, offsets }
}
