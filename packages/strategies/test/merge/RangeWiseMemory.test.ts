// The range-wise path holds a large bf16 group packed (2 bytes an element) instead of as float32
// (4 bytes per input and output): three 32M-element bf16 safetensors files merged (task arithmetic:
// the statistics passes of TIES are checked for bytes in RangeWise.test.ts) and written back hold far fewer array-buffer bytes at peak, and the files written are identical.
import { Model, Safetensors } from "@crucible/core"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { TaskArithmetic } from "../../src/merge/TaskArithmetic.ts"
import { decodeParams } from "../decodeParams.ts"

const ROWS = 4096
const COLS = 8192 // 32M elements, 64 MB of bf16 per file
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-rangewise-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

// bf16 values near ±0.01 from an integer hash: cheap to make, with the spread of real weights.
const writeModel = (file: string, seed: number) => {
  const header = JSON.stringify({ "w.weight": { dtype: "BF16", shape: [ROWS, COLS], data_offsets: [0, ROWS * COLS * 2] } }).padEnd(64, " ")
  const fd = fs.openSync(file, "w")
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(header.length))
  fs.writeSync(fd, length)
  fs.writeSync(fd, header)
  const chunk = new Uint16Array(1 << 20)
  for (let at = 0; at < ROWS * COLS; at += chunk.length) {
    for (let k = 0; k < chunk.length; k++) {
      const h = Math.imul((at + k) ^ seed, 0x9e3779b1) >>> 0
      chunk[k] = (h & 0x8000) | 0x3c00 | ((h >>> 20) & 0x3ff)
    }
    fs.writeSync(fd, new Uint8Array(chunk.buffer))
  }
  fs.closeSync(fd)
}

const context = { id: "m", kind: "merge/task-arithmetic", resolvePath: (p: string) => p, runDir: "/nonexistent", cacheDir: "/nonexistent", dryRun: false }

/** Merges the three files into `out`, returning the peak rise of array-buffer memory meanwhile. */
const mergeInto = (out: string, threshold: string | undefined) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    if (threshold !== undefined) process.env.CRUCIBLE_RANGE_WISE_BYTES = threshold
    const [base, ...models] = yield* Effect.forEach([0, 1, 2], (m) => Safetensors.read(path.join(dir, `m${m}.safetensors`)))
    const merged = yield* TaskArithmetic.run({ ...context, params: decodeParams(TaskArithmetic, { weights: [0.5, 0.5] } as never) as never, inputs: { base: base!, models } })
    const before = process.memoryUsage().arrayBuffers
    let peak = before
    const sampler = setInterval(() => void (peak = Math.max(peak, process.memoryUsage().arrayBuffers)), 10)
    yield* Effect.ensuring(Safetensors.write(out, Model.make("merged", [...merged.tensors.values()])), Effect.sync(() => clearInterval(sampler)))
    return Math.max(peak, process.memoryUsage().arrayBuffers) - before
  })).pipe(Effect.ensuring(Effect.sync(() => delete process.env.CRUCIBLE_RANGE_WISE_BYTES))))

describe("range-wise memory", () => {
  it("task arithmetic of 3 × 32M-element bf16 tensors holds far less than the whole-tensor path, with the same file", async () => {
    for (const m of [0, 1, 2]) writeModel(path.join(dir, `m${m}.safetensors`), m + 1)
    // Range-wise first, so that garbage the whole-tensor run leaves cannot inflate its figure.
    const ranged = await mergeInto(path.join(dir, "ranged.safetensors"), undefined)
    const whole = await mergeInto(path.join(dir, "whole.safetensors"), String(2 ** 40))
    // Packed: 3 × 64 MB plus a 4 MB output range; whole: 4 × 128 MB of float32.
    expect(ranged).toBeLessThan(0.6 * whole)
    expect(whole).toBeGreaterThan(400e6)
    expect(fs.readFileSync(path.join(dir, "ranged.safetensors")).equals(fs.readFileSync(path.join(dir, "whole.safetensors")))).toBe(true)
  }, 60_000)
})
