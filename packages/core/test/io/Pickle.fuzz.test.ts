/**
 * Property-based fuzzing of the pickle reader and of the PyTorch checkpoint reader built on it:
 * random opcode programs, mutations of real pickles (Python's and torch's) and random bytes.
 * Every outcome is a value, a refused global or a structural error — the reader's catch-all
 * for unforeseen exceptions is never reached — and checkpoints fail only with typed errors.
 */
import { describe, expect, it } from "vitest"
import { Cause, Effect, Exit } from "effect"
import fc from "fast-check"
import * as fs from "node:fs"
import * as ByteSource from "../../src/io/ByteSource.ts"
import * as Pickle from "../../src/io/pickle/Pickle.ts"
import * as Torch from "../../src/io/torch/Torch.ts"
import * as Zip from "../../src/io/zip/Zip.ts"
import { findGlobal, persistentLoader } from "../../src/io/torch/Globals.ts"
import { fixture } from "./helpers.ts"
import { torchZip } from "./builders.ts"

const HANG_GUARD_MS = 2_000
const TYPED = new Set(["FormatError", "UnsafePickle", "InvalidArgument", "ExpansionLimit"])

const load = (bytes: Uint8Array) => {
  const started = performance.now()
  const outcome = Pickle.load(bytes, { findGlobal, persistentLoad: persistentLoader().load })
  expect(performance.now() - started).toBeLessThan(HANG_GUARD_MS)
  expect(["Loaded", "Unsafe", "Invalid"]).toContain(outcome._tag)
  if (outcome._tag === "Invalid") expect(outcome.detail).not.toMatch(/^unreadable pickle/)
  return outcome
}

/** The torch pickle of a real checkpoint, taken out of its zip. */
const torchPickle = await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
  const archive = yield* Zip.open(yield* ByteSource.open(fixture("torch", "module.pt")))
  return yield* archive.readWhole(archive.entries.get("module/data.pkl")!, 1 << 20)
})))
const seeds = [torchPickle, ...[0, 1, 2, 3, 4, 5].map((p) => new Uint8Array(fs.readFileSync(fixture("pickle", `values.p${p}.pkl`))))]
const storages = await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
  const archive = yield* Zip.open(yield* ByteSource.open(fixture("torch", "module.pt")))
  const out: Record<string, Uint8Array> = {}
  for (const [name, entry] of archive.entries) if (name.startsWith("module/data/")) out[name.slice("module/data/".length)] = yield* archive.readWhole(entry, 1 << 20)
  return out
})))

const enc = (s: string) => Array.from(new TextEncoder().encode(s))
const u32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff]

/** One opcode with plausible (and sometimes hostile) arguments. */
const opcode: fc.Arbitrary<Array<number>> = fc.oneof(
  fc.constantFrom(0x28, 0x2e, 0x30, 0x31, 0x32, 0x4e, 0x88, 0x89, 0x29, 0x74, 0x85, 0x86, 0x87, 0x5d, 0x6c, 0x61, 0x65, 0x7d, 0x64,
    0x73, 0x75, 0x8f, 0x90, 0x91, 0x94, 0x52, 0x81, 0x92, 0x51, 0x62, 0x93, 0x6f, 0x98, 0x97).map((op) => [op]),
  fc.integer({ min: 0, max: 255 }).map((n) => [0x4b, n]),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }).map((n) => [0x4a, ...u32(n)]),
  fc.uint8Array({ maxLength: 12 }).map((b) => [0x8a, b.length, ...b]),
  fc.integer({ min: 0, max: 12 }).map((n) => [0x68, n]),
  fc.integer({ min: 0, max: 12 }).map((n) => [0x71, n]),
  fc.nat().map((n) => [0x6a, ...u32(n)]),
  fc.string({ maxLength: 10 }).map((s) => { const b = enc(s); return [0x58, ...u32(b.length), ...b] }),
  fc.string({ maxLength: 10 }).map((s) => { const b = enc(s); return [0x8c, b.length & 0xff, ...b] }),
  fc.uint8Array({ maxLength: 10 }).map((b) => [0x43, b.length, ...b]),
  fc.integer({ min: 0, max: 0xffffffff }).map((n) => [0x58, ...u32(n)]), // a length that lies
  fc.constantFrom("collections\nOrderedDict", "torch._utils\n_rebuild_tensor_v2", "torch\nFloatStorage", "torch\nLongStorage",
    "_codecs\nencode", "builtins\nset", "torch\nSize", "torch._tensor\n_rebuild_from_type_v2", "posix\nsystem", "builtins\neval",
    "numpy.core.multiarray\nscalar", "numpy\ndtype", "torch\nTensor").map((g) => [0x63, ...enc(`${g}\n`)]),
  fc.constantFrom("I1\n", "I01\n", "L99999999999999999999L\n", "F1.5\n", "Fnan\n", "S'a\\x41'\n", "Vab\\u0041\n", "p3\n", "g3\n", "P0\n").map((t) => enc(t)),
  fc.integer({ min: 0, max: 5 }).map((v) => [0x80, v])
)
const program = fc.array(opcode, { maxLength: 40 }).map((ops) => Uint8Array.from([0x80, 0x02, ...ops.flat(), 0x2e]))

const mutation = fc.record({ at: fc.nat(), kind: fc.constantFrom("flip", "delete", "insert", "truncate"), byte: fc.integer({ min: 0, max: 255 }) })
const mutated = fc.tuple(fc.constantFrom(...seeds), fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([seed, ms]) => {
  let b = seed
  for (const m of ms) {
    const at = m.at % Math.max(1, b.length)
    b = m.kind === "flip" ? Uint8Array.from(b, (x, i) => (i === at ? x ^ m.byte : x))
      : m.kind === "delete" ? Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + 1)])
      : m.kind === "insert" ? Uint8Array.from([...b.subarray(0, at), m.byte, ...b.subarray(at)])
      : b.subarray(0, at)
  }
  return b
})

describe("pickle fuzzing", () => {
  it("survives 1,500 random opcode programs", () => {
    fc.assert(fc.property(program, (bytes) => void load(bytes)), { numRuns: 1500, seed: 7001 })
  })

  it("survives 1,500 mutations of real pickles (Python's, protocols 0–5, and torch's)", () => {
    fc.assert(fc.property(mutated, (bytes) => void load(bytes)), { numRuns: 1500, seed: 7002 })
  })

  it("survives 500 random byte strings", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => void load(bytes)), { numRuns: 500, seed: 7003 })
  })

  it("reads 800 checkpoints with mutated data.pkl to typed errors or readable tensors", () => {
    fc.assert(
      fc.property(fc.oneof(mutated.filter((b) => b !== torchPickle), fc.constant(torchPickle), program), (pickle) => {
        const zip = torchZip(pickle, storages, { prefix: "module" })
        const started = performance.now()
        const exit = Effect.runSyncExit(Effect.gen(function* () {
          const model = yield* Torch.fromSource(ByteSource.fromBytes("fuzz.pt", zip))
          for (const t of model.tensors.values()) yield* t.read()
        }))
        expect(performance.now() - started).toBeLessThan(HANG_GUARD_MS)
        if (Exit.isFailure(exit)) {
          const error = Cause.findErrorOption(exit.cause)
          expect(error._tag, Cause.pretty(exit.cause)).toBe("Some")
          if (error._tag === "Some") {
            expect(TYPED.has((error.value as { _tag: string })._tag)).toBe(true)
            expect((error.value as { message: string }).message).toContain("fuzz.pt")
          }
        }
      }),
      { numRuns: 800, seed: 7004 }
    )
  })
})
