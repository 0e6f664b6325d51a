/**
 * A reader of zip archives as `torch.save` writes them: the central directory is parsed (ZIP64
 * included, for checkpoints above 4 GB) and every entry is a byte range of the archive, read by
 * positional reads. Stored entries can be read in parts, so a tensor is read without reading
 * its whole storage; deflated entries (which torch never writes for storages) are inflated
 * whole under a size limit. CRCs are checked on every whole read and on any sequence of range
 * reads that covers an entry from its start to its end.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { crc32, inflateRawSync } from "node:zlib"
import type { ByteSource } from "../ByteSource.ts"
import { FormatError, type IoError } from "../IoError.ts"

/** One file of the archive, as its central directory describes it. @category models */
export interface Entry {
  readonly name: string
  /** 0: stored, 8: deflated. */
  readonly method: number
  readonly crc32: number
  readonly compressedSize: number
  /** Uncompressed size in bytes. */
  readonly size: number
  readonly localHeaderOffset: number
}

/** An open archive. @category models */
export interface Archive {
  readonly path: string
  readonly entries: ReadonlyMap<string, Entry>
  /** Absolute offset of the entry's data in the archive (its local header is read once). */
  readonly dataOffset: (entry: Entry) => Effect.Effect<number, FormatError | IoError>
  /** The whole entry, inflated if needed, CRC-checked; refused above `maxBytes`. */
  readonly readWhole: (entry: Entry, maxBytes: number) => Effect.Effect<Uint8Array<ArrayBuffer>, FormatError | IoError>
  /** `length` bytes at `offset` of a stored entry. */
  readonly readRange: (entry: Entry, offset: number, length: number) => Effect.Effect<Uint8Array<ArrayBuffer>, FormatError | IoError>
}

const EOCD = 0x06054b50
const ZIP64_LOCATOR = 0x07064b50
const ZIP64_EOCD = 0x06064b50
const CENTRAL = 0x02014b50
const LOCAL = 0x04034b50
/** A central directory bigger than this is not a checkpoint's (100k tensors take ~10 MB). */
const MAX_CENTRAL_DIRECTORY = 256 * 1024 * 1024

/** Opens the archive read by `source`; `format` names it in errors ("pytorch"). @category constructors */
export const open = (source: ByteSource, format = "zip"): Effect.Effect<Archive, FormatError | IoError> =>
  Effect.gen(function* () {
    const fail = (detail: string) => new FormatError({ file: source.path, format, detail })
    const directory = yield* locateDirectory(source, fail)
    if (directory.size > MAX_CENTRAL_DIRECTORY) return yield* fail(`central directory of ${directory.size} bytes exceeds the ${MAX_CENTRAL_DIRECTORY}-byte limit`)
    const bytes = yield* source.read(directory.offset, directory.size)
    const entries = parseDirectory(bytes, directory.count, directory.offset)
    if (typeof entries === "string") return yield* fail(entries)
    return makeArchive(source, format, entries)
  })

interface Directory {
  readonly offset: number
  readonly size: number
  readonly count: number
}

const locateDirectory = (source: ByteSource, fail: (detail: string) => FormatError): Effect.Effect<Directory, FormatError | IoError> =>
  Effect.gen(function* () {
    if (source.size < 22) return yield* fail(`file is ${source.size} bytes, too short to be a zip archive`)
    const tailLength = Math.min(source.size, 22 + 0xffff)
    const tailStart = source.size - tailLength
    const tail = yield* source.read(tailStart, tailLength)
    const dv = view(tail)
    let at = -1
    // The end record is followed only by its comment: scan backwards for a consistent one.
    for (let i = tail.byteLength - 22; i >= 0; i--) {
      if (dv.getUint32(i, true) === EOCD && i + 22 + dv.getUint16(i + 20, true) <= tail.byteLength) {
        at = i
        break
      }
    }
    if (at < 0) return yield* fail("no end of central directory record (not a zip archive, or truncated)")
    const eocdOffset = tailStart + at
    if (dv.getUint16(at + 4, true) !== 0 || dv.getUint16(at + 6, true) !== 0) return yield* fail("multi-disk archives are not supported")
    let count = dv.getUint16(at + 10, true)
    let size = dv.getUint32(at + 12, true)
    let offset = dv.getUint32(at + 16, true)
    let end = eocdOffset
    if (eocdOffset >= 20) {
      const locator = view(yield* source.read(eocdOffset - 20, 20))
      if (locator.getUint32(0, true) === ZIP64_LOCATOR) {
        const recordOffset = safe(locator.getBigUint64(8, true))
        if (recordOffset === undefined || recordOffset + 56 > eocdOffset - 20) return yield* fail("ZIP64 end record offset is out of range")
        const record = view(yield* source.read(recordOffset, 56))
        if (record.getUint32(0, true) !== ZIP64_EOCD) return yield* fail(`no ZIP64 end record at offset ${recordOffset}`)
        const c = safe(record.getBigUint64(32, true))
        const s = safe(record.getBigUint64(40, true))
        const o = safe(record.getBigUint64(48, true))
        if (c === undefined || s === undefined || o === undefined) return yield* fail("ZIP64 end record sizes are out of range")
        count = c
        size = s
        offset = o
        end = recordOffset
      }
    }
    if (offset + size > end) return yield* fail(`central directory [${offset}, ${offset + size}) runs past its end record at ${end} (truncated file?)`)
    if (count * 46 > size) return yield* fail(`central directory of ${size} bytes cannot hold ${count} entries`)
    return { offset, size, count }
  })

const parseDirectory = (bytes: Uint8Array, count: number, directoryOffset: number): Map<string, Entry> | string => {
  const dv = view(bytes)
  const entries = new Map<string, Entry>()
  const decoder = new TextDecoder("utf-8")
  let at = 0
  for (let i = 0; i < count; i++) {
    if (at + 46 > bytes.byteLength || dv.getUint32(at, true) !== CENTRAL) return `central directory entry ${i} is malformed (bad signature at offset ${directoryOffset + at})`
    const flags = dv.getUint16(at + 8, true)
    const method = dv.getUint16(at + 10, true)
    const nameLength = dv.getUint16(at + 28, true)
    const extraLength = dv.getUint16(at + 30, true)
    const commentLength = dv.getUint16(at + 32, true)
    const next = at + 46 + nameLength + extraLength + commentLength
    if (next > bytes.byteLength) return `central directory entry ${i} runs past the directory`
    const name = decoder.decode(bytes.subarray(at + 46, at + 46 + nameLength))
    if ((flags & 1) !== 0) return `entry "${name}" is encrypted`
    if (method !== 0 && method !== 8) return `entry "${name}" uses compression method ${method} (only stored and deflated entries are supported)`
    let compressedSize = dv.getUint32(at + 20, true)
    let size = dv.getUint32(at + 24, true)
    let localHeaderOffset = dv.getUint32(at + 42, true)
    const zip64 = findExtra(dv, at + 46 + nameLength, extraLength, 0x0001)
    if (zip64 !== undefined) {
      // Only the fields saturated in the fixed header are present, in this order.
      let p = zip64.start
      const take = (): number | undefined => {
        if (p + 8 > zip64.end) return undefined
        const v = safe(dv.getBigUint64(p, true))
        p += 8
        return v
      }
      if (size === 0xffffffff) size = take() ?? -1
      if (compressedSize === 0xffffffff) compressedSize = take() ?? -1
      if (localHeaderOffset === 0xffffffff) localHeaderOffset = take() ?? -1
      if (size < 0 || compressedSize < 0 || localHeaderOffset < 0) return `entry "${name}": ZIP64 extra field is truncated or out of range`
    }
    if (method === 0 && compressedSize !== size) return `stored entry "${name}" has compressed size ${compressedSize} but size ${size}`
    if (localHeaderOffset + 30 + compressedSize > directoryOffset) return `entry "${name}" [${localHeaderOffset}, +${compressedSize}) overlaps the central directory at ${directoryOffset}`
    if (entries.has(name)) return `duplicate entry "${name}"`
    entries.set(name, { name, method, crc32: dv.getUint32(at + 16, true), compressedSize, size, localHeaderOffset })
    at = next
  }
  return entries
}

const findExtra = (dv: DataView, start: number, length: number, id: number): { start: number; end: number } | undefined => {
  let p = start
  const end = start + length
  while (p + 4 <= end) {
    const tag = dv.getUint16(p, true)
    const size = dv.getUint16(p + 2, true)
    if (tag === id) return { start: p + 4, end: Math.min(end, p + 4 + size) }
    p += 4 + size
  }
  return undefined
}

const makeArchive = (source: ByteSource, format: string, entries: ReadonlyMap<string, Entry>): Archive => {
  const fail = (entry: Entry, detail: string) => new FormatError({ file: source.path, format, detail: `entry "${entry.name}": ${detail}` })
  const offsets = new Map<string, number>()
  // Running CRC of each stored entry over range reads that continue one another from byte 0.
  const sequential = new Map<string, { next: number; crc: number }>()

  const dataOffset = (entry: Entry) =>
    Effect.gen(function* () {
      const known = offsets.get(entry.name)
      if (known !== undefined) return known
      const header = yield* source.read(entry.localHeaderOffset, 30)
      const dv = view(header)
      if (dv.getUint32(0, true) !== LOCAL) return yield* fail(entry, `no local header at offset ${entry.localHeaderOffset}`)
      const nameLength = dv.getUint16(26, true)
      const start = entry.localHeaderOffset + 30 + nameLength + dv.getUint16(28, true)
      if (start + entry.compressedSize > source.size) return yield* fail(entry, `data [${start}, ${start + entry.compressedSize}) runs past the end of the file (${source.size} bytes; truncated?)`)
      const localName = new TextDecoder("utf-8").decode(yield* source.read(entry.localHeaderOffset + 30, nameLength))
      if (localName !== entry.name) return yield* fail(entry, `local header names "${localName}" instead`)
      offsets.set(entry.name, start)
      return start
    })

  const checkCrc = (entry: Entry, crc: number) =>
    crc === entry.crc32 ? Effect.void : Effect.fail(fail(entry, `CRC-32 mismatch (stored ${hex(entry.crc32)}, computed ${hex(crc)}): the file is corrupt`))

  const readWhole = (entry: Entry, maxBytes: number) =>
    Effect.gen(function* () {
      if (entry.size > maxBytes) return yield* fail(entry, `${entry.size} bytes exceeds the ${maxBytes}-byte limit for this entry`)
      const start = yield* dataOffset(entry)
      const raw = yield* source.read(start, entry.compressedSize)
      let bytes = raw
      if (entry.method === 8) {
        const inflated = inflate(raw, entry.size)
        if (typeof inflated === "string") return yield* fail(entry, inflated)
        bytes = inflated
      }
      yield* checkCrc(entry, crc32(bytes))
      return bytes
    })

  const readRange = (entry: Entry, offset: number, length: number) =>
    Effect.gen(function* () {
      if (entry.method !== 0) return yield* fail(entry, "is compressed; only stored entries can be read by range")
      if (offset < 0 || length < 0 || offset + length > entry.size) return yield* fail(entry, `range [${offset}, ${offset + length}) is outside its ${entry.size} bytes`)
      const start = yield* dataOffset(entry)
      const bytes = yield* source.read(start + offset, length)
      const state = offset === 0 ? { next: 0, crc: 0 } : sequential.get(entry.name)
      if (state !== undefined && state.next === offset) {
        state.crc = crc32(bytes, state.crc)
        state.next += length
        if (state.next === entry.size) {
          sequential.delete(entry.name)
          yield* checkCrc(entry, state.crc)
        } else sequential.set(entry.name, state)
      }
      return bytes
    })

  return { path: source.path, entries, dataOffset, readWhole, readRange }
}

const inflate = (raw: Uint8Array, size: number): Uint8Array<ArrayBuffer> | string => {
  try {
    // maxOutputLength bounds a zip bomb to the size the directory declared.
    const out = inflateRawSync(raw, { maxOutputLength: Math.max(1, size) })
    if (out.byteLength !== size) return `inflates to ${out.byteLength} bytes, not the declared ${size}`
    return new Uint8Array(out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength))
  } catch (e) {
    return `cannot inflate: ${(e as Error).message}`
  }
}

const view = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
const safe = (v: bigint): number | undefined => (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined)
const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`
