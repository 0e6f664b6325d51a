import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as Pickle from "../../src/io/pickle/Pickle.ts"
import { Dict, List, PySet, Tuple } from "../../src/io/pickle/Values.ts"
import { findGlobal, persistentLoader } from "../../src/io/torch/Globals.ts"
import { fixture, json } from "./helpers.ts"

const options = () => ({ findGlobal, persistentLoad: persistentLoader().load })
const load = (bytes: Uint8Array) => Pickle.load(bytes, options())

/** The canonical JSON form make_fixtures.py writes for Python values. */
const canon = (v: unknown): unknown => {
  if (v === null || typeof v === "boolean" || typeof v === "string") return v
  if (typeof v === "bigint") return { t: "int", v: String(v) }
  if (typeof v === "number") {
    if (Number.isInteger(v) && !Object.is(v, -0)) return v
    return { t: "float", v: Number.isNaN(v) ? "nan" : v === Infinity ? "inf" : v === -Infinity ? "-inf" : Object.is(v, -0) ? "-0" : v }
  }
  if (v instanceof Uint8Array) return { t: "bytes", v: Buffer.from(v).toString("hex") }
  if (v instanceof Tuple) return { t: "tuple", v: v.items.map(canon) }
  if (v instanceof List) return { t: "list", v: v.items.map(canon) }
  if (v instanceof PySet) return { t: v.frozen ? "frozenset" : "set", v: v.items.map(canon).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)) }
  if (v instanceof Dict) return { t: v.ordered ? "OrderedDict" : "dict", v: [...v.entries].map(([k, x]) => [canon(k), canon(x)]) }
  throw new Error(`unexpected value ${String(v)}`)
}

describe("pickle reader", () => {
  // Python writes floats that are integral (0.0, 1e300) as floats; the reader returns JS numbers,
  // so the canonical form of a Python float 1e300 is compared through its numeric value.
  const normalizeFloats = (u: unknown): unknown => {
    if (Array.isArray(u)) return u.map(normalizeFloats)
    if (typeof u !== "object" || u === null) return u
    const o = u as { t?: unknown; v?: unknown }
    if (o.t === "float" && typeof o.v === "number") return o.v
    return Object.fromEntries(Object.entries(u).map(([k, x]) => [k, normalizeFloats(x)]))
  }

  for (const protocol of [0, 1, 2, 3, 4, 5]) {
    it(`reads every kind of value Python pickles with protocol ${protocol}`, () => {
      const bytes = fs.readFileSync(fixture("pickle", `values.p${protocol}.pkl`))
      const outcome = load(bytes)
      expect(outcome._tag).toBe("Loaded")
      if (outcome._tag !== "Loaded") return
      expect(outcome.end).toBe(bytes.byteLength)
      expect(normalizeFloats(canon(outcome.value))).toEqual(normalizeFloats(json("pickle", "values.json")))
      // A memoised object is one object, however many times the pickle refers to it.
      const shared = (outcome.value as Dict).entries.get("shared") as Tuple
      expect(shared.items[0]).toBe(shared.items[1])
    })
  }

  it("refuses a global that is not allowlisted and names it", () => {
    // protocol 2: GLOBAL 'posix system', a tuple of one string, REDUCE, STOP
    const evil = Uint8Array.from([0x80, 0x02, ...ascii("cposix\nsystem\n"), 0x58, 4, 0, 0, 0, ...ascii("true"), 0x85, 0x52, 0x2e])
    expect(load(evil)).toEqual({ _tag: "Unsafe", global: "posix.system" })
    const stackGlobal = Uint8Array.from([0x80, 0x04, 0x8c, 8, ...ascii("builtins"), 0x8c, 4, ...ascii("eval"), 0x93, 0x2e])
    expect(load(stackGlobal)).toEqual({ _tag: "Unsafe", global: "builtins.eval" })
    const inst = Uint8Array.from([0x28, ...ascii("ios\nsystem\n"), 0x2e])
    expect(load(inst)).toEqual({ _tag: "Unsafe", global: "os.system" })
    const ext = Uint8Array.from([0x80, 0x02, 0x82, 0x01, 0x2e])
    expect(load(ext)).toEqual({ _tag: "Unsafe", global: "copyreg extension code 1" })
  })

  it("calls allowlisted constructors only with data, and refuses misuse with a reason", () => {
    // _codecs.encode('abc', 'rot13') is allowlisted for latin1 only
    const rot13 = Uint8Array.from([0x80, 0x02, ...ascii("c_codecs\nencode\n"), 0x58, 3, 0, 0, 0, ...ascii("abc"), 0x58, 5, 0, 0, 0, ...ascii("rot13"), 0x86, 0x52, 0x2e])
    const outcome = load(rot13)
    expect(outcome._tag).toBe("Invalid")
    expect(outcome._tag === "Invalid" && outcome.detail).toMatch(/rot13/)
    // REDUCE on something that is not a global
    const notCallable = Uint8Array.from([0x80, 0x02, 0x4b, 1, 0x29, 0x52, 0x2e])
    expect(load(notCallable)).toMatchObject({ _tag: "Invalid", detail: expect.stringMatching(/not callable/) })
  })

  it("rejects structurally broken pickles with the offending offset", () => {
    const cases: Array<[string, Array<number>, RegExp]> = [
      ["empty", [], /truncated/],
      ["no STOP", [0x80, 0x02, 0x4e], /truncated/],
      ["unknown opcode", [0x80, 0x02, 0xff], /unknown opcode 0xff/],
      ["protocol 6", [0x80, 0x06, 0x4e, 0x2e], /protocol 6/],
      ["pop empty", [0x30, 0x2e], /needs a MARK/],
      ["missing memo", [0x80, 0x02, 0x68, 0x07, 0x2e], /memo entry 7/],
      ["two values at STOP", [0x4e, 0x4e, 0x2e], /STOP with 2 values/],
      ["APPEND to a tuple", [0x29, 0x4e, 0x61, 0x2e], /appends to a tuple/],
      ["SETITEM on a list", [0x5d, 0x4e, 0x4e, 0x73, 0x2e], /sets items on a list/],
      ["unhashable key", [0x7d, 0x5d, 0x4e, 0x73, 0x2e], /unhashable list/],
      ["mark hides the stack", [0x4e, 0x28, 0x85, 0x2e], /empty stack/],
      ["BINBYTES8 of 2^62 bytes", [0x80, 0x04, 0x8e, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x2e], /beyond any file/],
      ["BINUNICODE of 4 GiB", [0x80, 0x02, 0x58, 0xff, 0xff, 0xff, 0xff, 0x2e], /truncated/],
      ["LONG4 of 2 GiB", [0x80, 0x02, 0x8b, 0xff, 0xff, 0xff, 0x7f, 0x2e], /LONG4 of 2147483647 bytes/],
      ["out-of-band buffer", [0x80, 0x05, 0x97, 0x2e], /out-of-band/],
      ["BUILD on an int", [0x4b, 1, 0x4e, 0x62, 0x2e], /BUILD on a int/]
    ]
    for (const [name, bytes, pattern] of cases) {
      const outcome = load(Uint8Array.from(bytes))
      expect(outcome._tag, name).toBe("Invalid")
      expect(outcome._tag === "Invalid" ? outcome.detail : "", name).toMatch(pattern)
    }
  })

  it("reads lists nested 200,000 deep without recursion", () => {
    // ']' * n then 'a' * (n - 1): lists nested n deep, built by the stack machine alone.
    const n = 200_000
    const bytes = new Uint8Array(2 * n + 1)
    bytes.fill(0x5d, 0, n)
    bytes.fill(0x61, n, 2 * n - 1)
    bytes[2 * n - 1] = 0x2e
    const outcome = load(bytes.subarray(0, 2 * n))
    expect(outcome._tag).toBe("Loaded")
  })

  it("keeps a memo bomb (one object referenced 2^30 times) as a small graph", () => {
    // x = [], then 30 times: x = (x, x) — 2^30 leaves as a tree, 31 objects as a graph.
    const ops = [0x80, 0x02, 0x5d, 0x71, 0, 0x30]
    for (let i = 0; i < 30; i++) ops.push(0x68, i, 0x68, i, 0x86, 0x71, i + 1, 0x30)
    ops.push(0x68, 30, 0x2e)
    const outcome = load(Uint8Array.from(ops))
    expect(outcome._tag).toBe("Loaded")
    const top = outcome._tag === "Loaded" ? (outcome.value as Tuple) : undefined
    expect(top?.items[0]).toBe(top?.items[1])
  })
})

const ascii = (s: string) => Array.from(s, (c) => c.charCodeAt(0))
