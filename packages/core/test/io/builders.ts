/**
 * Byte-level builders for hostile and edge-case inputs: a minimal pickler that writes what
 * torch's pickler writes (protocol 2), and a zip writer (stored entries, optional ZIP64
 * records everywhere, optional wrong CRCs). The zip writer's output was checked against
 * Python's zipfile (`testzip()` and reads of every entry) while these tests were written.
 */
import * as fs from "node:fs"
import { crc32 } from "node:zlib"

const enc = new TextEncoder()
const bytes = (...parts: Array<ArrayLike<number>>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}
const u32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff]

// ---------------------------------------------------------------------------------------------
// Pickles

/** Pickle fragments (each pushes one value) and their composition. */
export const P = {
  str: (s: string) => { const b = enc.encode(s); return bytes([0x58, ...u32(b.length)], b) },
  int: (n: number | bigint): Uint8Array => {
    if (typeof n === "number" && n >= 0 && n < 256) return Uint8Array.of(0x4b, n)
    if (typeof n === "number" && n >= -(2 ** 31) && n < 2 ** 31) return bytes([0x4a, ...u32(n)])
    let v = BigInt(n)
    const out: Array<number> = []
    for (let i = 0; i < 16; i++) { out.push(Number(v & 0xffn)); v >>= 8n }
    return bytes([0x8a, out.length], out)
  },
  none: Uint8Array.of(0x4e),
  false: Uint8Array.of(0x89),
  global: (module: string, name: string) => bytes([0x63], enc.encode(`${module}\n${name}\n`)),
  tuple: (...items: Array<Uint8Array>) => bytes([0x28], ...items, [0x74]),
  list: (...items: Array<Uint8Array>) => bytes([0x5d, 0x28], ...items, [0x65]),
  reduce: (callable: Uint8Array, args: Uint8Array) => bytes(callable, args, [0x52]),
  persid: (pid: Uint8Array) => bytes(pid, [0x51]),
  dict: (...pairs: Array<readonly [Uint8Array, Uint8Array]>) => bytes([0x7d, 0x28], ...pairs.flatMap(([k, v]) => [k, v]), [0x75]),
  /** A whole pickle: PROTO 2, the value, STOP. */
  pickle: (value: Uint8Array) => bytes([0x80, 0x02], value, [0x2e])
}

/** A tensor as torch pickles it: `_rebuild_tensor_v2(persistent storage, offset, size, stride, False, OrderedDict())`. */
export const torchTensor = (t: { storage: string; key: string; numel: number | bigint; offset?: number; shape: ReadonlyArray<number>; stride: ReadonlyArray<number> }) =>
  P.reduce(
    P.global("torch._utils", "_rebuild_tensor_v2"),
    P.tuple(
      P.persid(P.tuple(P.str("storage"), P.global("torch", t.storage), P.str(t.key), P.str("cpu"), P.int(t.numel))),
      P.int(t.offset ?? 0),
      P.tuple(...t.shape.map(P.int)),
      P.tuple(...t.stride.map(P.int)),
      P.false,
      P.reduce(P.global("collections", "OrderedDict"), Uint8Array.of(0x29))
    )
  )

// ---------------------------------------------------------------------------------------------
// Zips

export interface ZipEntry {
  readonly name: string
  readonly data: Uint8Array
  /** Overrides the CRC written (to make a corrupt archive). */
  readonly crc?: number
}

/** A zip of stored entries; with `zip64`, every size and offset goes through ZIP64 records. */
export const storedZip = (entries: ReadonlyArray<ZipEntry>, options: { zip64?: boolean } = {}): Uint8Array => {
  const locals: Array<Uint8Array> = []
  const centrals: Array<Uint8Array> = []
  let offset = 0
  for (const e of entries) {
    const name = enc.encode(e.name)
    const crc = e.crc ?? crc32(e.data)
    const local = bytes(u32(0x04034b50), [20, 0, 0, 0, 0, 0, 0, 0, 0, 0], u32(crc), u32(e.data.length), u32(e.data.length), [name.length, name.length >> 8, 0, 0], name)
    locals.push(local, e.data)
    const big = options.zip64 === true
    const extra = big ? bytes([1, 0, 24, 0], u64(e.data.length), u64(e.data.length), u64(offset)) : new Uint8Array(0)
    centrals.push(bytes(
      u32(0x02014b50), [45, 3, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0], u32(crc),
      u32(big ? 0xffffffff : e.data.length), u32(big ? 0xffffffff : e.data.length),
      [name.length, name.length >> 8, extra.length, 0, 0, 0, 0, 0, 0, 0], u32(0), u32(big ? 0xffffffff : offset), name, extra
    ))
    offset += local.length + e.data.length
  }
  const central = bytes(...centrals)
  return bytes(...locals, central, endRecords(entries.length, central.length, offset, options.zip64 === true))
}

const u64 = (n: number) => { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(n), true); return b }

const endRecords = (count: number, size: number, offset: number, zip64: boolean): Uint8Array => {
  const eocd = bytes(u32(0x06054b50), [0, 0, 0, 0], zip64 ? [0xff, 0xff, 0xff, 0xff] : [count & 0xff, count >> 8, count & 0xff, count >> 8], u32(zip64 ? 0xffffffff : size), u32(zip64 ? 0xffffffff : offset), [0, 0])
  if (!zip64) return eocd
  const record = bytes(u32(0x06064b50), u64(44), [45, 3, 45, 0], u32(0), u32(0), u64(count), u64(count), u64(size), u64(offset))
  const locator = bytes(u32(0x07064b50), u32(0), u64(offset + size), u32(1))
  return bytes(record, locator, eocd)
}

/** A torch-style checkpoint archive: `<prefix>/data.pkl`, `<prefix>/data/<key>`, `<prefix>/version`. */
export const torchZip = (pickle: Uint8Array, storages: Readonly<Record<string, Uint8Array>>, options: { zip64?: boolean; prefix?: string } = {}) => {
  const prefix = options.prefix ?? "archive"
  return storedZip([
    { name: `${prefix}/data.pkl`, data: pickle },
    ...Object.entries(storages).map(([key, data]) => ({ name: `${prefix}/data/${key}`, data })),
    { name: `${prefix}/version`, data: enc.encode("3\n") }
  ], options)
}

/**
 * A real ZIP64 checkpoint bigger than 4 GiB, written sparse (the hole costs no disk): storage
 * "0" is `hugeBytes` of zeros (its CRC is left 0: it is only read by range), storage "1" lies
 * beyond 4 GiB and holds `tail`.
 */
export const sparseZip64Checkpoint = (path: string, hugeBytes: number, pickle: Uint8Array, tail: Uint8Array) => {
  const fd = fs.openSync(path, "w")
  try {
    const names = ["big/data.pkl", "big/data/0", "big/data/1"].map((n) => enc.encode(n))
    const datas: Array<{ size: number; crc: number; write: (at: number) => void }> = [
      { size: pickle.length, crc: crc32(pickle), write: (at) => fs.writeSync(fd, pickle, 0, pickle.length, at) },
      { size: hugeBytes, crc: 0, write: () => {} },
      { size: tail.length, crc: crc32(tail), write: (at) => fs.writeSync(fd, tail, 0, tail.length, at) }
    ]
    const centrals: Array<Uint8Array> = []
    let offset = 0
    datas.forEach((d, i) => {
      const name = names[i]!
      // The local header's ZIP64 extra carries the sizes, as miniz writes for huge entries.
      const localExtra = bytes([1, 0, 16, 0], u64(d.size), u64(d.size))
      const local = bytes(u32(0x04034b50), [45, 0, 0, 0, 0, 0, 0, 0, 0, 0], u32(d.crc), u32(0xffffffff), u32(0xffffffff), [name.length, 0, localExtra.length, 0], name, localExtra)
      fs.writeSync(fd, local, 0, local.length, offset)
      d.write(offset + local.length)
      const extra = bytes([1, 0, 24, 0], u64(d.size), u64(d.size), u64(offset))
      centrals.push(bytes(u32(0x02014b50), [45, 3, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0], u32(d.crc), u32(0xffffffff), u32(0xffffffff), [name.length, 0, extra.length, 0, 0, 0, 0, 0, 0, 0], u32(0), u32(0xffffffff), name, extra))
      offset += local.length + d.size
    })
    const central = bytes(...centrals)
    const tailRecords = bytes(central, endRecords(datas.length, central.length, offset, true))
    fs.writeSync(fd, tailRecords, 0, tailRecords.length, offset)
  } finally {
    fs.closeSync(fd)
  }
}
