/**
 * The Crucible side of bench/io/run.ts, one measurement per process so each peak RSS is its own:
 *
 *   node bench/io/worker.ts write FILE GIB     stream GIB GiB of f32 into a safetensors file
 *   node bench/io/worker.ts read FILE          read every tensor of a safetensors file
 *   node bench/io/worker.ts convert PT OUT     readModel(.pt) → writeModel(.safetensors)
 *
 * Prints one JSON line: seconds, bytes, the RSS before the work (baseline) and the peak RSS.
 */
import { createRequire } from "node:module"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import * as Formats from "../../packages/core/src/io/Formats.ts"
import * as Safetensors from "../../packages/core/src/io/safetensors/Safetensors.ts"
import * as Model from "../../packages/core/src/model/Model.ts"
import type { TensorRef } from "../../packages/core/src/tensor/TensorRef.ts"
import * as TensorRefs from "../../packages/core/src/tensor/TensorRef.ts"

// bench/ has no package.json: take Effect from @crucible/core, the instance its modules use.
const ROOT = path.resolve(import.meta.dirname, "..", "..")
const coreRequire = createRequire(path.join(ROOT, "packages", "core", "package.json"))
const { Effect } = (await import(pathToFileURL(coreRequire.resolve("effect")).href)) as typeof import("effect")

const TENSOR_ELEMENTS = 4 * 1024 * 1024 // 16 MiB of f32, as peer.py uses

const report = (fields: Record<string, unknown>, baseline: number) =>
  console.log(JSON.stringify({ ...fields, baselineRss: baseline, peakRss: process.resourceUsage().maxRSS * 1024 }))

const pattern = (() => {
  const values = new Float32Array(TENSOR_ELEMENTS)
  for (let i = 0; i < values.length; i++) values[i] = i
  return new Uint8Array(values.buffer)
})()

/** A lazy model of `count` f32 tensors whose bytes come from one pattern buffer (no per-read allocation). */
const synthetic = (count: number): Model.Model => {
  const tensors = Array.from({ length: count }, (_, i): TensorRef => ({
    name: `layer.${i}.weight`,
    dtype: "F32",
    shape: [TENSOR_ELEMENTS],
    read: (range) => Effect.succeed(range === undefined ? pattern : pattern.subarray(range.start * 4, range.end * 4))
  }))
  return Model.make("synthetic", tensors)
}

const [mode, a, b] = process.argv.slice(2)
const baseline = process.memoryUsage().rss
const started = performance.now()
const seconds = () => (performance.now() - started) / 1000

if (mode === "write") {
  const count = Math.round((Number(b) * 2 ** 30) / (TENSOR_ELEMENTS * 4))
  const written = await Effect.runPromise(Safetensors.write(a!, synthetic(count)))
  report({ mode, seconds: seconds(), bytes: written.bytes }, baseline)
} else if (mode === "read") {
  const result = await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const model = yield* Safetensors.read(a!)
    let bytes = 0
    let check = 0
    for (const t of model.tensors.values()) {
      const data = yield* t.read()
      bytes += data.byteLength
      check ^= data[data.byteLength - 1]!
    }
    return { bytes, check }
  })))
  report({ mode, seconds: seconds(), ...result }, baseline)
} else if (mode === "read-into") {
  // The path merges and the writer use: each tensor read straight into one reused buffer.
  const result = await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const model = yield* Safetensors.read(a!)
    let bytes = 0
    let check = 0
    let buffer = new Uint8Array(0)
    for (const t of model.tensors.values()) {
      const size = TensorRefs.byteLength(t)
      if (buffer.byteLength < size) buffer = new Uint8Array(size)
      const into = buffer.subarray(0, size)
      yield* TensorRefs.readInto(t, undefined, into)
      bytes += size
      check ^= into[size - 1]!
    }
    return { bytes, check }
  })))
  report({ mode, seconds: seconds(), ...result }, baseline)
} else if (mode === "convert") {
  const result = await Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const model = yield* Formats.readModel(a!)
    return yield* Formats.writeModel(b!, model)
  })))
  report({ mode, seconds: seconds(), bytes: result.files.reduce((n, f) => n + f.bytes, 0) }, baseline)
} else {
  console.error("usage: worker.ts write FILE GIB | read FILE | read-into FILE | convert PT OUT")
  process.exit(2)
}
