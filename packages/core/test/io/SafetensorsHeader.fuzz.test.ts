/**
 * Property-based fuzzing of the safetensors header parser (through the reader, on in-memory
 * bytes): valid headers parse to exactly what was generated; anything else — mutated, truncated,
 * lying about its length, or random — fails with a FormatError naming the file, never a defect.
 * Each case reads no more bytes than the file holds and ends long before the hang guard.
 */
import { describe, expect, it } from "vitest"
import { Cause, Effect, Exit } from "effect"
import fc from "fast-check"
import * as ByteSource from "../../src/io/ByteSource.ts"
import * as Safetensors from "../../src/io/safetensors/Safetensors.ts"
import { byteSize, DTypes, type DType } from "../../src/tensor/DType.ts"

const FILE = "fuzz.safetensors"
const HANG_GUARD_MS = 2_000

interface Spec {
  readonly name: string
  readonly dtype: DType
  readonly shape: ReadonlyArray<number>
}

const spec = fc.record({
  name: fc.string({ minLength: 1, maxLength: 12 }).filter((s) => s !== "__metadata__"),
  dtype: fc.constantFrom(...DTypes),
  shape: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 4 })
})
const specs = fc.uniqueArray(spec, { selector: (s) => s.name, maxLength: 6 })
const metadata = fc.option(fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }), { nil: undefined })

const size = (s: Spec) => s.shape.reduce((n, d) => n * d, 1) * byteSize[s.dtype]

/** A valid file for `specs`, with its data filled by `fill`. */
const encode = (tensors: ReadonlyArray<Spec>, meta: Record<string, string> | undefined, padding: number) => {
  // Written by hand: names such as "__proto__" must stay plain keys.
  const entries: Array<string> = meta === undefined ? [] : [`"__metadata__":${JSON.stringify(meta)}`]
  let offset = 0
  for (const t of tensors) {
    entries.push(`${JSON.stringify(t.name)}:${JSON.stringify({ dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size(t)] })}`)
    offset += size(t)
  }
  const json = new TextEncoder().encode(`{${entries.join(",")}}${" ".repeat(padding)}`)
  const out = new Uint8Array(8 + json.length + offset)
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true)
  out.set(json, 8)
  for (let i = 8 + json.length; i < out.length; i++) out[i] = (i * 31) & 0xff
  return out
}

/** Reads every tensor of the file; records the largest single read and the total. */
const readAll = (bytes: Uint8Array) => {
  const base = ByteSource.fromBytes(FILE, bytes, "safetensors")
  const stats = { largest: 0, total: 0 }
  const source: ByteSource.ByteSource = { ...base, read: (o, n) => ((stats.largest = Math.max(stats.largest, n)), (stats.total += n), base.read(o, n)) }
  const started = performance.now()
  const exit = Effect.runSyncExit(
    Effect.gen(function* () {
      const model = yield* Safetensors.fromSource(source)
      const tensors: Array<{ name: string; dtype: DType; shape: ReadonlyArray<number>; bytes: number }> = []
      for (const t of model.tensors.values()) tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: (yield* t.read()).byteLength })
      return { tensors, metadata: model.metadata }
    })
  )
  return { exit, stats, ms: performance.now() - started }
}

/** Every failure is a typed FormatError naming the file; nothing escapes as a defect. */
const expectTyped = (exit: Exit.Exit<unknown, unknown>) => {
  if (Exit.isSuccess(exit)) return
  const error = Cause.findErrorOption(exit.cause)
  expect(error._tag, Cause.pretty(exit.cause)).toBe("Some")
  if (error._tag === "Some") {
    expect((error.value as { _tag: string })._tag).toBe("FormatError")
    expect((error.value as { file: string }).file).toBe(FILE)
  }
}

const mutation = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("length" as const), value: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }),
  fc.record({ kind: fc.constant("text" as const), at: fc.nat(), text: fc.constantFrom('"', "}", "{", ",", ":", "\\", "[", "]", "-1", "1e400", "null", '"F32"', "\u0000", "\uffff") })
)

type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never

const mutate = (bytes: Uint8Array, m: Mutation): Uint8Array => {
  const out = bytes.slice()
  const at = "at" in m ? m.at % Math.max(1, bytes.length) : 0
  switch (m.kind) {
    default: return out
    case "flip": out[at]! ^= 1 << m.bit; return out
    case "truncate": return out.subarray(0, at)
    case "insert": return Uint8Array.from([...out.subarray(0, at), m.byte, ...out.subarray(at)])
    case "length": if (out.length >= 8) new DataView(out.buffer).setBigUint64(0, m.value, true); return out
    case "text": { const t = new TextEncoder().encode(m.text); return Uint8Array.from([...out.subarray(0, Math.max(8, at)), ...t, ...out.subarray(Math.max(8, at))]) }
  }
}

describe("safetensors header fuzzing", () => {
  it("parses 1,000 generated valid files to exactly what was generated", () => {
    fc.assert(
      fc.property(specs, metadata, fc.integer({ min: 0, max: 9 }), (tensors, meta, padding) => {
        const { exit, ms } = readAll(encode(tensors, meta, padding))
        expect(ms).toBeLessThan(HANG_GUARD_MS)
        expect(Exit.isSuccess(exit)).toBe(true)
        if (!Exit.isSuccess(exit)) return
        // The reader orders by offset; zero-size tensors share offsets, so compare by name.
        const byName = <T extends { name: string }>(xs: ReadonlyArray<T>) => [...xs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
        expect(byName(exit.value.tensors)).toEqual(byName(tensors.map((t) => ({ ...t, bytes: size(t) }))))
        expect(exit.value.metadata).toEqual(meta ?? {})
      }),
      { numRuns: 1000, seed: 20240601 }
    )
  })

  it("reads 2,500 mutated, truncated or lying files consistently or refuses them with typed errors", () => {
    fc.assert(
      fc.property(specs, metadata, fc.array(mutation, { minLength: 1, maxLength: 3 }), (tensors, meta, mutations) => {
        const bytes = mutations.reduce(mutate, encode(tensors, meta, 0))
        const { exit, stats, ms } = readAll(bytes)
        expect(ms).toBeLessThan(HANG_GUARD_MS)
        expectTyped(exit)
        // A file that still parses yields whole tensors: exactly dtype × shape bytes each.
        if (Exit.isSuccess(exit)) for (const t of exit.value.tensors) expect(t.bytes).toBe(size(t))
        expect(stats.largest).toBeLessThanOrEqual(bytes.length)
        expect(stats.total).toBeLessThanOrEqual(2 * bytes.length + 8)
      }),
      { numRuns: 2500, seed: 20240602 }
    )
  })

  it("refuses 1,000 random byte strings with typed errors", () => {
    const lengthPrefixed = fc.tuple(fc.bigInt({ min: 0n, max: 300n }), fc.uint8Array({ maxLength: 300 })).map(([n, rest]) => {
      const out = new Uint8Array(8 + rest.length)
      new DataView(out.buffer).setBigUint64(0, n, true)
      out.set(rest, 8)
      return out
    })
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 400 }), lengthPrefixed), (bytes) => {
        const { exit, ms } = readAll(bytes)
        expect(ms).toBeLessThan(HANG_GUARD_MS)
        expectTyped(exit)
      }),
      { numRuns: 1000, seed: 20240603 }
    )
  })
})
