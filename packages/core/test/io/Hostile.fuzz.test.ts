/**
 * Fuzzing of the public entry points (`Formats.inspect`, `Formats.readModel`) with hostile
 * checkpoints on disk, in process (issue 19): mutated pickles of every committed torch fixture
 * (rebuilt into valid zips, so the pickle is what is fuzzed, not the CRC), mutated legacy
 * checkpoints, generated tensor views with zero, overlapping and huge strides and shapes, and
 * hostile sharded indexes. Each case either succeeds or fails with a typed error naming the
 * file, within a time bound, and never allocates more than {@link MEMORY_BOUND} — a model that
 * loads has only tensors within the expansion limit, so reading them all stays small.
 * Seeded (fast-check's global seed, vitest.setup.ts, and one per property); ~10 s in all.
 */
import { afterAll, describe, expect, it } from "vitest"
import { Cause, Effect, Exit } from "effect"
import fc from "fast-check"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as ByteSource from "../../src/io/ByteSource.ts"
import * as Formats from "../../src/io/Formats.ts"
import { DEFAULT_MAX_EXPANSION, EXPANSION_SLACK_BYTES } from "../../src/io/torch/Strided.ts"
import * as Zip from "../../src/io/zip/Zip.ts"
import { byteLength } from "../../src/tensor/TensorRef.ts"
import { fixture } from "./helpers.ts"
import { P, torchTensor, torchZip } from "./builders.ts"

const HANG_GUARD_MS = 2_000
const MEMORY_BOUND = 256 * 1024 * 1024
const TYPED = new Set(["FormatError", "UnsafePickle", "InvalidArgument", "ExpansionLimit", "IoError"])

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-hostile-fuzz-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
let counter = 0
/** Writes `bytes` to a fresh file (named `name`) in the fuzz folder. */
const put = (name: string, bytes: Uint8Array | string): string => {
  const file = path.join(dir, `${counter++}-${name}`)
  fs.writeFileSync(file, bytes)
  return file
}

/**
 * Inspects and reads the model at `file` (every tensor, whole) and checks the outcome: a success
 * whose tensors all stay within the expansion limit of the file's bytes, or a typed error naming
 * `named`; in time, and without growing the process's ArrayBuffers by more than MEMORY_BOUND.
 */
const survives = async (file: string, named = file) => {
  const baseline = process.memoryUsage().arrayBuffers
  const started = performance.now()
  const size = fs.statSync(file).size
  const bound = Math.max(DEFAULT_MAX_EXPANSION * size, size + EXPANSION_SLACK_BYTES)
  let peak = 0
  const exit = await Effect.runPromiseExit(Effect.scoped(Effect.gen(function* () {
    const inspection = yield* Formats.inspect(file)
    for (const t of inspection.tensors) expect(t.bytes, `${t.name} of ${file}`).toBeLessThanOrEqual(bound)
    const model = yield* Formats.readModel(file)
    for (const t of model.tensors.values()) {
      expect(byteLength(t)).toBeLessThanOrEqual(bound)
      yield* t.read()
      peak = Math.max(peak, process.memoryUsage().arrayBuffers - baseline)
    }
  })))
  expect(performance.now() - started).toBeLessThan(HANG_GUARD_MS)
  expect(peak).toBeLessThan(MEMORY_BOUND)
  if (Exit.isFailure(exit)) {
    const error = Cause.findErrorOption(exit.cause)
    expect(error._tag, Cause.pretty(exit.cause)).toBe("Some")
    if (error._tag === "Some") {
      const e = error.value as { _tag: string; message: string }
      expect(TYPED.has(e._tag), e.message).toBe(true)
      if (e._tag !== "InvalidArgument") expect(e.message).toContain(named)
    }
  }
  return exit
}

// ---------------------------------------------------------------------------------------------
// Seeds: every committed zip fixture taken apart (its pickle, its storages), and the legacy ones.

interface Parts {
  readonly prefix: string
  readonly pickle: Uint8Array
  readonly storages: Record<string, Uint8Array>
}
const torchFixtures = fs.readdirSync(fixture("torch")).filter((f) => f.endsWith(".pt")).sort()
const zips: Array<Parts> = []
const legacy: Array<Uint8Array> = []
for (const name of torchFixtures) {
  const bytes = new Uint8Array(fs.readFileSync(fixture("torch", name)))
  if (bytes[0] !== 0x50) {
    legacy.push(bytes)
    continue
  }
  zips.push(await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const archive = yield* Zip.open(ByteSource.fromBytes(name, bytes))
    const pkl = [...archive.entries.keys()].find((n) => n.endsWith("/data.pkl"))!
    const prefix = pkl.slice(0, -"/data.pkl".length)
    const storages: Record<string, Uint8Array> = {}
    for (const [n, entry] of archive.entries) if (n.startsWith(`${prefix}/data/`)) storages[n.slice(prefix.length + 6)] = yield* archive.readWhole(entry, 1 << 20)
    return { prefix, pickle: yield* archive.readWhole(archive.entries.get(pkl)!, 1 << 20), storages }
  }))))
}

const mutation = fc.record({ at: fc.nat(), kind: fc.constantFrom("flip", "delete", "insert", "truncate", "byte"), byte: fc.integer({ min: 0, max: 255 }) })
const mutate = (seed: Uint8Array, ms: ReadonlyArray<{ at: number; kind: string; byte: number }>) => {
  let b = seed
  for (const m of ms) {
    const at = m.at % Math.max(1, b.length)
    b = m.kind === "flip" ? Uint8Array.from(b, (x, i) => (i === at ? x ^ (1 << (m.byte & 7)) : x))
      : m.kind === "byte" ? Uint8Array.from(b, (x, i) => (i === at ? m.byte : x))
      : m.kind === "delete" ? Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + 1)])
      : m.kind === "insert" ? Uint8Array.from([...b.subarray(0, at), m.byte, ...b.subarray(at)])
      : b.subarray(0, at)
  }
  return b
}

// ---------------------------------------------------------------------------------------------
// Generated views: shapes up to 2^40 elements, strides 0, 1, overlapping or huge, lying sizes.

const dim = fc.oneof(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 1 << 20 }), fc.constantFrom(1 << 25, 131072, 2 ** 31 - 1))
const view = fc.integer({ min: 0, max: 3 }).chain((rank) => fc.record({
  shape: fc.array(dim, { minLength: rank, maxLength: rank }),
  stride: fc.array(fc.oneof(fc.constant(0), fc.constant(1), fc.integer({ min: 0, max: 64 }), fc.nat()), { minLength: rank, maxLength: rank }),
  offset: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 64 })),
  storage: fc.integer({ min: 0, max: 3 }),
  dtype: fc.constantFrom("FloatStorage", "HalfStorage", "ByteStorage", "LongStorage")
}))
const storageSizes = fc.array(fc.integer({ min: 0, max: 4096 }), { minLength: 4, maxLength: 4 })
const elementBytes: Record<string, number> = { FloatStorage: 4, HalfStorage: 2, ByteStorage: 1, LongStorage: 8 }

describe("hostile checkpoints through Formats.inspect and readModel", () => {
  it("survives 300 mutated pickles of every committed torch fixture, rebuilt into valid zips", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: zips.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), async (i, ms) => {
        const seed = zips[i]!
        const file = put("mutated.pt", torchZip(mutate(seed.pickle, ms), seed.storages, { prefix: seed.prefix }))
        await survives(file)
      }),
      { numRuns: 300, seed: 1901 }
    )
  })

  it("survives 150 raw mutations of the committed checkpoints (zip and legacy)", async () => {
    const raw = [...legacy, ...torchFixtures.filter((f) => f.startsWith("bomb") || f === "module.pt").map((f) => new Uint8Array(fs.readFileSync(fixture("torch", f))))]
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...raw), fc.array(mutation, { minLength: 1, maxLength: 3 }), async (seed, ms) => void await survives(put("raw.pt", mutate(seed, ms)))),
      { numRuns: 150, seed: 1902 }
    )
  })

  it("refuses or bounds 400 generated views (zero, overlapping and huge strides) within the expansion limit", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(view, { minLength: 1, maxLength: 4 }), storageSizes, fc.boolean(), async (views, sizes, lie) => {
        const used = new Map<number, string>()
        const pickle = P.pickle(P.dict(...views.map((v, i) => {
          const dtype = used.get(v.storage) ?? v.dtype
          used.set(v.storage, dtype)
          const numel = sizes[v.storage]! + (lie && i === 0 ? 1 : 0)
          return [P.str(`t${i}`), torchTensor({ storage: dtype, key: String(v.storage), numel, offset: v.offset, shape: v.shape, stride: v.stride })] as const
        })))
        const storages = Object.fromEntries([...used].map(([key, dtype]) => [String(key), new Uint8Array(sizes[key]! * elementBytes[dtype]!)]))
        const exit = await survives(put("views.pt", torchZip(pickle, storages)))
        // A view whose logical size dwarfs its storage never loads.
        const huge = views.some((v) => v.shape.reduce((n, d) => n * d, 1) * elementBytes[used.get(v.storage)!]! > 16 * 4096 * 8 + EXPANSION_SLACK_BYTES)
        if (huge) expect(Exit.isFailure(exit)).toBe(true)
      }),
      { numRuns: 400, seed: 1903 }
    )
  })
})

// ---------------------------------------------------------------------------------------------
// Hostile indexes beside two real shards.

const shardDir = fixture("safetensors", "sharded")
const shardNames = fs.readdirSync(shardDir).filter((f) => f.endsWith(".safetensors")).sort()
const realIndex = JSON.parse(fs.readFileSync(path.join(shardDir, "model.safetensors.index.json"), "utf8")) as { weight_map: Record<string, string> }

const shardValue = fc.oneof(
  fc.constantFrom(...shardNames),
  fc.constantFrom("", "../model-00001-of-00002.safetensors", "/etc/passwd", "a/../../b.safetensors", "missing.safetensors", "model.safetensors.index.json", ".", "sub/x.safetensors"),
  fc.string({ maxLength: 12 }),
  fc.oneof(fc.integer(), fc.constant(null), fc.constant([]), fc.constant({}), fc.boolean()) as fc.Arbitrary<unknown>
)
const tensorName = fc.oneof(fc.constantFrom(...Object.keys(realIndex.weight_map)), fc.constantFrom("__proto__", "constructor", "", "fc1.weight "), fc.string({ maxLength: 10 }))
const weightMap = fc.oneof(
  // The real map with a few entries changed, added or removed.
  fc.tuple(fc.array(fc.tuple(tensorName, shardValue), { maxLength: 3 }), fc.array(fc.constantFrom(...Object.keys(realIndex.weight_map)), { maxLength: 2 })).map(([changes, removed]) => {
    const out: Record<string, unknown> = { ...realIndex.weight_map }
    for (const r of removed) delete out[r]
    for (const [k, v] of changes) Object.defineProperty(out, k, { value: v, enumerable: true, configurable: true, writable: true })
    return out
  }),
  fc.dictionary(tensorName, shardValue, { maxKeys: 6 }),
  fc.oneof(fc.constant(null), fc.constant([]), fc.string(), fc.integer()) as fc.Arbitrary<unknown>
)
const indexText = fc.oneof(
  fc.record({ metadata: fc.oneof(fc.constant(undefined), fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(fc.string({ maxLength: 6 }), fc.integer()) as fc.Arbitrary<unknown>), fc.constant(null)), weight_map: weightMap })
    .map((o) => JSON.stringify(o)),
  fc.tuple(fc.constant(JSON.stringify(realIndex)), fc.array(mutation, { minLength: 1, maxLength: 3 }))
    .map(([text, ms]) => new TextDecoder().decode(mutate(new TextEncoder().encode(text), ms))),
  fc.constantFrom("", "[", "{", "null", "[]", '{"weight_map": {"a": "b"}, "weight_map": 1}', "[".repeat(100_000), `{"weight_map": ${"[".repeat(5000)}`)
)

describe("hostile sharded indexes through Formats.inspect and readModel", () => {
  const folder = fs.mkdtempSync(path.join(dir, "index-"))
  for (const s of shardNames) fs.copyFileSync(path.join(shardDir, s), path.join(folder, s))

  it("reads 400 hostile index files to the model or a typed error naming the index", async () => {
    await fc.assert(
      fc.asyncProperty(indexText, async (text) => {
        const index = path.join(folder, "model.safetensors.index.json")
        fs.writeFileSync(index, text)
        await survives(index)
        // Through the folder too: a snapshot folder is detected by its index.
        await survives(folder, folder)
      }),
      { numRuns: 400, seed: 1904 }
    )
  })

  it("reads 150 indexes over mutated shards (hostile safetensors headers) to the model or a typed error", async () => {
    const shards = shardNames.map((s) => new Uint8Array(fs.readFileSync(path.join(shardDir, s))))
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: shards.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 3 }), async (i, ms) => {
        const sub = fs.mkdtempSync(path.join(dir, "shards-"))
        shardNames.forEach((s, j) => fs.writeFileSync(path.join(sub, s), j === i ? mutate(shards[j]!, ms) : shards[j]!))
        fs.writeFileSync(path.join(sub, "model.safetensors.index.json"), JSON.stringify(realIndex))
        const exit = await survives(path.join(sub, "model.safetensors.index.json"), sub)
        fs.rmSync(sub, { recursive: true, force: true })
        return exit !== undefined
      }),
      { numRuns: 150, seed: 1905 }
    )
  })
})
