/**
 * The checkpoint format of PyTorch before 1.6 (still written with
 * `_use_new_zipfile_serialization=False`): five pickles back to back — a magic number, the
 * protocol version 1001, system info, the object with storages as persistent ids, and the
 * sorted list of storage keys — then, for each key in that order, an int64 element count and
 * the storage's raw bytes. Storages are located by reading only those 8-byte counts.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { ByteSource } from "../ByteSource.ts"
import { FormatError, type ModelIoError, UnsafePickle } from "../IoError.ts"
import * as Pickle from "../pickle/Pickle.ts"
import { asInteger, Dict, List } from "../pickle/Values.ts"
import { byteSize } from "../../tensor/DType.ts"
import { findGlobal, persistentLoader, type StorageRef } from "./Globals.ts"
import type { Storages } from "./Strided.ts"

const FORMAT = "pytorch (legacy)"
const MAGIC = 0x1950a86a20f9469cfc6cn
/** LONG1 of 10 bytes holding MAGIC, as protocol-2 pickles of it begin after PROTO 2. */
const MAGIC_PICKLE = [0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]
/** The five pickles are read from a prefix of the file that grows until they fit, up to this. */
const MAX_PICKLES_BYTES = 1024 * 1024 * 1024

/** True when `head` (the first bytes of a file) starts with the legacy magic number. */
export const isLegacy = (head: Uint8Array): boolean => head[0] === 0x80 && MAGIC_PICKLE.every((b, i) => head[i + 2] === b)

/** Reads a legacy checkpoint; `build` turns the unpickled object and its storages into a model. */
export const fromSource = <A, E>(
  source: ByteSource,
  build: (root: unknown, storages: Storages) => Effect.Effect<A, E>
): Effect.Effect<A, E | ModelIoError> =>
  Effect.gen(function* () {
    const fail = (detail: string) => new FormatError({ file: source.path, format: FORMAT, detail })
    let window = Math.min(source.size, 1024 * 1024)
    for (;;) {
      const bytes = yield* source.read(0, window)
      const parsed = parsePickles(bytes)
      if (parsed._tag === "Unsafe") return yield* new UnsafePickle({ file: source.path, global: parsed.global })
      if (parsed._tag === "Invalid") {
        if (parsed.truncated && window < Math.min(source.size, MAX_PICKLES_BYTES)) {
          window = Math.min(source.size, MAX_PICKLES_BYTES, window * 4)
          continue
        }
        return yield* fail(parsed.detail)
      }
      const located = yield* locateStorages(source, parsed.keys, parsed.storages, parsed.end, fail)
      return yield* build(parsed.root, located)
    }
  })

type Parsed =
  | { readonly _tag: "Parsed"; readonly root: unknown; readonly keys: ReadonlyArray<string>; readonly storages: ReadonlyMap<string, StorageRef>; readonly end: number }
  | Exclude<Pickle.Outcome, { readonly _tag: "Loaded" }>

const parsePickles = (bytes: Uint8Array): Parsed => {
  const loader = persistentLoader()
  const options = { findGlobal, persistentLoad: loader.load }
  const values: Array<unknown> = []
  let at = 0
  for (let i = 0; i < 5; i++) {
    const outcome = Pickle.load(bytes, { ...options, start: at })
    if (outcome._tag !== "Loaded") return outcome._tag === "Invalid" ? { ...outcome, detail: `pickle ${i + 1} of 5: ${outcome.detail}` } : outcome
    values.push(outcome.value)
    at = outcome.end
  }
  const [magic, protocol, info, root, keys] = values
  if (magic !== MAGIC) return { _tag: "Invalid", detail: "bad magic number" }
  if (asInteger(protocol) !== 1001) return { _tag: "Invalid", detail: `unknown legacy protocol version ${String(protocol)}` }
  if (info instanceof Dict && info.entries.get("little_endian") === false) return { _tag: "Invalid", detail: "storages are big-endian; only little-endian checkpoints are supported" }
  if (!(keys instanceof List) || !keys.items.every((k) => typeof k === "string")) return { _tag: "Invalid", detail: "the storage key list is not a list of strings" }
  return { _tag: "Parsed", root, keys: keys.items as Array<string>, storages: loader.storages, end: at }
}

const locateStorages = (
  source: ByteSource,
  keys: ReadonlyArray<string>,
  storages: ReadonlyMap<string, StorageRef>,
  start: number,
  fail: (detail: string) => FormatError
): Effect.Effect<Storages, ModelIoError> =>
  Effect.gen(function* () {
    const offsets = new Map<string, { readonly offset: number; readonly bytes: number }>()
    let cursor = start
    for (const key of keys) {
      const ref = storages.get(key)
      if (ref === undefined) return yield* fail(`storage key "${key}" is listed but never referenced`)
      if (cursor + 8 > source.size) return yield* fail(`storage "${key}" starts beyond the end of the file (truncated?)`)
      const count = new DataView((yield* source.read(cursor, 8)).buffer).getBigInt64(0, true)
      if (count !== BigInt(ref.numel)) return yield* fail(`storage "${key}" holds ${count} elements but is referenced with ${ref.numel}`)
      const bytes = ref.numel * byteSize[ref.dtype]
      if (cursor + 8 + bytes > source.size) return yield* fail(`storage "${key}" runs past the end of the file (truncated?)`)
      offsets.set(key, { offset: cursor + 8, bytes })
      cursor += 8 + bytes
    }
    return {
      file: source.path,
      format: FORMAT,
      get: (ref) => {
        const root = offsets.get(ref.view?.root ?? ref.key)
        if (root === undefined) return `storage "${ref.key}" is referenced but not stored in the file`
        const base = root.offset + (ref.view?.offset ?? 0) * byteSize[ref.dtype]
        return { byteLength: ref.numel * byteSize[ref.dtype], read: (offset, length) => source.read(base + offset, length) }
      }
    }
  })
