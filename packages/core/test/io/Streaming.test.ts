// The fast paths of reading and writing large tensors: `readInto` (file bytes straight into
// memory the caller reuses), the sha256 computed on a worker thread, and the safetensors writer
// that reads chunk k+1 while chunk k is written — each against the plain path's bytes and
// against node:crypto's digest of the file on disk.
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as ByteSource from "../../src/io/ByteSource.ts"
import * as Digest from "../../src/io/Digest.ts"
import { FormatError } from "../../src/io/IoError.ts"
import * as Safetensors from "../../src/io/safetensors/Safetensors.ts"
import * as Model from "../../src/model/Model.ts"
import * as DType from "../../src/tensor/DType.ts"
import * as TensorRef from "../../src/tensor/TensorRef.ts"
import { failure, tempDir } from "./helpers.ts"

const bytesOf = (seed: number, n: number): Uint8Array => {
  const out = new Uint8Array(n)
  let s = seed >>> 0
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    out[i] = s >>> 24
  }
  return out
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

/** The first index where two arrays differ (-1 when they are equal), fast on millions of elements. */
const firstDifference = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  if (a.length !== b.length) return Math.min(a.length, b.length)
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i
  return -1
}

describe("readInto", () => {
  it.effect("reads the bytes read() reads into a caller's (shared) buffer, and refuses a range past the end", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const file = path.join(dir, "data.bin")
      const data = bytesOf(1, 100_000)
      fs.writeFileSync(file, data)
      const source = yield* ByteSource.open(file)
      const target = new Uint8Array(new SharedArrayBuffer(30_000))
      yield* source.readInto(12_345, target)
      assert.deepStrictEqual(Array.from(target), Array.from(yield* source.read(12_345, 30_000)))
      const past = yield* failure(source.readInto(90_000, new Uint8Array(20_000)))
      assert.instanceOf(past, FormatError)
      assert.include(past.message, "beyond the end of the file")
      const memory = ByteSource.fromBytes("mem", data)
      const fromMemory = new Uint8Array(500)
      yield* memory.readInto(99_500, fromMemory)
      assert.deepStrictEqual(Array.from(fromMemory), Array.from(data.subarray(99_500)))
    }))

  it.effect("a safetensors tensor reads a range into a buffer; a tensor without readInto falls back to read", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const values = Float32Array.from({ length: 5000 }, (_, i) => Math.sin(i) * 3)
      const file = path.join(dir, "m.safetensors")
      const inMemory = TensorRef.fromBytes("w", "F32", [50, 100], DType.fromNumbers(values, "F32"))
      yield* Safetensors.write(file, Model.make("m", [inMemory]))
      const tensor = (yield* Safetensors.read(file)).tensors.get("w")!
      assert.isTrue(TensorRef.hasReadInto(tensor))
      // A tensor derived by spreading (a stage that changes the bytes) does not inherit the fast path.
      assert.isFalse(TensorRef.hasReadInto({ ...tensor, read: () => Effect.succeed(new Uint8Array(0)) }))
      for (const ref of [tensor, inMemory]) {
        const target = new Uint8Array(1000 * 4)
        yield* TensorRef.readInto(ref, { start: 1234, end: 2234 }, target)
        assert.deepStrictEqual(Array.from(new Float32Array(target.buffer)), Array.from(values.subarray(1234, 2234)))
      }
    }))
})

describe("Digest", () => {
  it.effect("the worker's sha256 equals node:crypto's over shared, plain and empty chunks, given in order", () =>
    Effect.gen(function* () {
      const data = bytesOf(7, 3_000_000)
      const worker = yield* Digest.onWorker()
      const here = Digest.inThread()
      const shared = new Uint8Array(new SharedArrayBuffer(1_000_000))
      // Chunk boundaries of every kind: a view into the middle of a larger plain buffer (only the
      // view is hashed), a reused shared buffer, an empty chunk.
      const chunks: Array<() => Uint8Array> = [
        () => data.subarray(0, 10),
        () => new Uint8Array(0),
        () => { shared.set(data.subarray(10, 1_000_010)); return shared },
        () => data.subarray(1_000_010, 2_500_000),
        () => { shared.set(data.subarray(2_500_000)); return shared.subarray(0, 500_000) }
      ]
      for (const chunk of chunks) {
        const bytes = chunk()
        yield* worker.update(bytes)
        yield* here.update(bytes)
      }
      const expected = sha256(data)
      assert.strictEqual(yield* worker.hex, expected)
      assert.strictEqual(yield* here.hex, expected)
    }))

  it.effect("the worker's update of plain bytes is done at once (a copy is handed over), and reusing them does not change the digest", () =>
    Effect.gen(function* () {
      const worker = yield* Digest.onWorker()
      const plain = bytesOf(11, 4096)
      const original = plain.slice()
      // Synchronous: it does not wait for the worker (still starting here) to hash them.
      Effect.runSync(worker.update(plain))
      plain.fill(0)
      const shared = new Uint8Array(new SharedArrayBuffer(1000))
      shared.set(bytesOf(12, 1000))
      yield* worker.update(shared)
      const expected = createHash("sha256").update(original).update(shared).digest("hex")
      assert.strictEqual(yield* worker.hex, expected)
    }))

  it.effect("a file's size and sha256: a small one hashed on this thread, one of 32 MiB and more on a worker, a missing one undefined", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      for (const [name, n] of [["empty", 0], ["config.json", 1234], ["large.bin", Digest.WORKER_MIN_BYTES + 4_194_305]] as const) {
        const data = bytesOf(n + 1, n)
        const file = path.join(dir, name)
        fs.writeFileSync(file, data)
        assert.deepStrictEqual(yield* Digest.ofFile(file), { bytes: n, sha256: sha256(data) }, name)
      }
      assert.strictEqual(yield* Digest.ofFile(path.join(dir, "missing")), undefined)
    }))
})

describe("the pipelined safetensors writer", () => {
  it.effect("writes a large model from file-backed and computed tensors with the digest of the bytes on disk", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const n = 4_000_000 // 4 chunks per tensor, 40 MB in all: the digest runs on a worker
      const a = Float32Array.from({ length: n }, (_, i) => (i % 1013) * 0.5)
      const source = path.join(dir, "a.safetensors")
      yield* Safetensors.write(source, Model.make("a", [TensorRef.fromBytes("a", "F32", [n], DType.fromNumbers(a, "F32"))]))
      const fromFile = (yield* Safetensors.read(source)).tensors.get("a")!
      // A computed tensor without readInto, whose reads complete later than they are asked for.
      const computed: TensorRef.TensorRef = {
        name: "b",
        dtype: "F16",
        shape: [n],
        read: (range) =>
          Effect.promise(() => new Promise<TensorRef.TensorBytes>((resolve) => setTimeout(() => resolve(DType.fromNumbers(a.subarray(range?.start ?? 0, range?.end ?? n).map((x) => -x), "F16")), 2)))
      }
      const reported: Array<string> = []
      const out = path.join(dir, "out.safetensors")
      const tensors = [{ ...fromFile, name: "a" }, computed, { ...fromFile, name: "c" }, TensorRef.fromBytes("empty", "F32", [0], new Uint8Array(0))]
      const written = yield* Safetensors.write(out, Model.make("out", tensors), {
        onTensorWritten: (t, i, total) => Effect.sync(() => void reported.push(`${i + 1}/${total} ${t.name}`))
      })
      const bytes = fs.readFileSync(out)
      assert.strictEqual(written.sha256, sha256(bytes))
      assert.strictEqual(written.bytes, bytes.byteLength)
      assert.deepStrictEqual(reported, ["1/4 a", "2/4 b", "3/4 c", "4/4 empty"])
      const back = yield* Safetensors.read(out)
      const whole = (name: string) => Effect.map(back.tensors.get(name)!.read(), (b) => DType.toFloat64(b, back.tensors.get(name)!.dtype))
      assert.strictEqual(firstDifference(yield* whole("a"), a), -1)
      assert.strictEqual(firstDifference(yield* whole("c"), a), -1)
      assert.strictEqual(firstDifference(yield* whole("b"), DType.toFloat64(DType.fromNumbers(a.map((x) => -x), "F16"), "F16")), -1)
    }), 60_000)

  it.effect("a source that fails mid-write leaves no output and no temporary file", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const n = 3_000_000
      const failing: TensorRef.TensorRef = {
        name: "x",
        dtype: "F32",
        shape: [n],
        read: (range) => ((range?.start ?? 0) >= 2 * 1024 * 1024 ? Effect.fail({ _tag: "TestReadError", message: "disk gone" }) : Effect.succeed(new Uint8Array(((range?.end ?? n) - (range?.start ?? 0)) * 4)))
      }
      const out = path.join(dir, "out.safetensors")
      const error = yield* failure(Safetensors.write(out, Model.make("out", [failing])))
      assert.strictEqual(error._tag, "TestReadError")
      assert.deepStrictEqual(fs.readdirSync(dir), [])
    }))
})
