/**
 * How far apart two bf16 Hugging Face folders are, on a sample of tensors (both embeddings, the
 * final norm, every tensor of the first and the last layer): elements whose bits differ, the
 * largest difference in bf16 ulps (steps between adjacent bf16 values, −0 = +0) and in value.
 * Reads the shards with plain fs reads by the index, 16M elements at a time: nothing of
 * Crucible's is used to judge Crucible.
 */
import * as fs from "node:fs"
import * as path from "node:path"

/** One shard's tensors as its header lists them. */
interface Entry {
  readonly file: string
  readonly dtype: string
  readonly shape: ReadonlyArray<number>
  /** Absolute byte offsets in the file. */
  readonly begin: number
  readonly end: number
}

/** Every tensor of an HF folder (sharded with an index, or one model.safetensors). */
export const entries = (folder: string): Map<string, Entry> => {
  const indexFile = path.join(folder, "model.safetensors.index.json")
  const files = fs.existsSync(indexFile)
    ? [...new Set(Object.values((JSON.parse(fs.readFileSync(indexFile, "utf8")) as { weight_map: Record<string, string> }).weight_map))]
    : ["model.safetensors"]
  const out = new Map<string, Entry>()
  for (const name of files) {
    const file = path.join(folder, name)
    const fd = fs.openSync(file, "r")
    try {
      const prefix = Buffer.alloc(8)
      fs.readSync(fd, prefix, 0, 8, 0)
      const length = Number(prefix.readBigUInt64LE(0))
      const header = Buffer.alloc(length)
      fs.readSync(fd, header, 0, length, 8)
      const json = JSON.parse(header.toString("utf8")) as Record<string, { dtype: string; shape: Array<number>; data_offsets: [number, number] }>
      for (const [tensor, e] of Object.entries(json)) {
        if (tensor === "__metadata__") continue
        out.set(tensor, { file, dtype: e.dtype, shape: e.shape, begin: 8 + length + e.data_offsets[0], end: 8 + length + e.data_offsets[1] })
      }
    } finally {
      fs.closeSync(fd)
    }
  }
  return out
}

/** The tensors compared: embeddings, final norm, and the first and last layer whole. */
export const sample = (names: Iterable<string>): Array<string> => {
  const all = [...names]
  const layers = all.map((n) => /^model\.layers\.(\d+)\./.exec(n)?.[1]).filter((x) => x !== undefined).map(Number)
  const last = layers.length > 0 ? Math.max(...layers) : 0
  return all.filter((n) => !n.startsWith("model.layers.") || n.startsWith("model.layers.0.") || n.startsWith(`model.layers.${last}.`)).sort()
}

/**
 * Copies the sampled tensors of `folder` into `into/model.safetensors` (a folder `compareFolders`
 * reads like any other), so that a whole output can be deleted before the peer writes its own:
 * the bench then needs room for one output, not two. Returns the bytes written.
 */
export const extractSample = (folder: string, into: string): number => {
  const all = entries(folder)
  const names = sample(all.keys())
  const header: Record<string, unknown> = {}
  let offset = 0
  for (const n of names) {
    const e = all.get(n)!
    header[n] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.end - e.begin] }
    offset += e.end - e.begin
  }
  const json = JSON.stringify(header)
  const text = Buffer.from(json + " ".repeat((8 - (json.length % 8)) % 8))
  const prefix = Buffer.alloc(8)
  prefix.writeBigUInt64LE(BigInt(text.length), 0)
  fs.mkdirSync(into, { recursive: true })
  const out = fs.openSync(path.join(into, "model.safetensors"), "w")
  const buffer = Buffer.alloc(CHUNK * 2)
  try {
    fs.writeSync(out, prefix)
    fs.writeSync(out, text)
    for (const n of names) {
      const e = all.get(n)!
      const from = fs.openSync(e.file, "r")
      try {
        for (let at = e.begin; at < e.end; at += buffer.length) {
          const len = Math.min(buffer.length, e.end - at)
          fs.readSync(from, buffer, 0, len, at)
          fs.writeSync(out, buffer, 0, len)
        }
      } finally {
        fs.closeSync(from)
      }
    }
  } finally {
    fs.closeSync(out)
  }
  return 8 + text.length + offset
}

/** bf16 bits on a line where adjacent values are one apart (−0 and +0 both 0). */
export const ordinal = (bits: number): number => (bits & 0x8000 ? -(bits & 0x7fff) : bits & 0x7fff)

const isNaN16 = (bits: number): boolean => (bits & 0x7f80) === 0x7f80 && (bits & 0x7f) !== 0

const toFloat = (bits: number): number => {
  const view = new DataView(new ArrayBuffer(4))
  view.setUint32(0, bits << 16)
  return view.getFloat32(0)
}

/** The differences between two folders on the sampled tensors. */
export interface Difference {
  readonly tensors: number
  readonly elements: number
  readonly differing: number
  /** Elements more than one bf16 ulp apart. */
  readonly beyondOneUlp: number
  /**
   * Largest |ordinal(a) − ordinal(b)| where both |a| and |b| ≥ 2⁻²⁰ (Infinity when a NaN meets a
   * number): nearer zero, a sum that cancels is one f32 rounding away from many bf16 steps.
   */
  readonly maxUlps: number
  /** Largest ulp distance anywhere, zero's neighbourhood included. */
  readonly maxUlpsNearZero: number
  readonly maxAbs: number
  /** The tensor holding the largest ulp difference (away from zero). */
  readonly worst: string | undefined
  /** Sampled names missing from `b`, or with another dtype or shape. */
  readonly mismatched: ReadonlyArray<string>
}

const CHUNK = 1 << 24
const SMALL = 2 ** -20

/** Compares the sampled bf16 tensors of folder `a` with those of folder `b`, bit for bit. */
export const compareFolders = (a: string, b: string): Difference => {
  const ea = entries(a), eb = entries(b)
  const names = sample(ea.keys())
  const mismatched: Array<string> = []
  let elements = 0, differing = 0, beyondOneUlp = 0, maxUlps = 0, maxUlpsNearZero = 0, maxAbs = 0, tensors = 0
  let worst: string | undefined
  const ba = Buffer.alloc(CHUNK * 2), bb = Buffer.alloc(CHUNK * 2)
  const ua = new Uint16Array(ba.buffer, ba.byteOffset, CHUNK), ub = new Uint16Array(bb.buffer, bb.byteOffset, CHUNK)
  for (const name of names) {
    const x = ea.get(name)!, y = eb.get(name)
    if (y === undefined || x.dtype !== "BF16" || y.dtype !== "BF16" || x.shape.join() !== y.shape.join()) {
      mismatched.push(name)
      continue
    }
    tensors++
    const fa = fs.openSync(x.file, "r"), fb = fs.openSync(y.file, "r")
    try {
      const bytes = x.end - x.begin
      for (let at = 0; at < bytes; at += CHUNK * 2) {
        const len = Math.min(CHUNK * 2, bytes - at)
        fs.readSync(fa, ba, 0, len, x.begin + at)
        fs.readSync(fb, bb, 0, len, y.begin + at)
        const n = len / 2
        for (let j = 0; j < n; j++) {
          const p = ua[j]!, q = ub[j]!
          if (p === q) continue
          if (isNaN16(p) && isNaN16(q)) continue // NaN compares as NaN, whatever its payload
          differing++
          const ulps = isNaN16(p) || isNaN16(q) ? Infinity : Math.abs(ordinal(p) - ordinal(q))
          if (ulps > 1) beyondOneUlp++
          const fp = toFloat(p), fq = toFloat(q)
          if (ulps > maxUlpsNearZero) maxUlpsNearZero = ulps
          if (ulps > maxUlps && Math.min(Math.abs(fp), Math.abs(fq)) >= SMALL) {
            maxUlps = ulps
            worst = name
          }
          const d = Math.abs(fp - fq)
          if (d > maxAbs) maxAbs = d
        }
        elements += n
      }
    } finally {
      fs.closeSync(fa)
      fs.closeSync(fb)
    }
  }
  return { tensors, elements, differing, beyondOneUlp, maxUlps, maxUlpsNearZero, maxAbs, worst, mismatched }
}
