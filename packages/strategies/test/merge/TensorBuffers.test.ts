// Whole tensors read chunk by chunk into reused buffers: exact values for every dtype and size,
// reuse from one read to the next, fresh arrays for a concurrent read, shared memory on request.
import { DType, TensorRef } from "@crucible/core"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import * as TensorBuffers from "../../src/merge/TensorBuffers.ts"

const values = (seed: number, n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 1000 + i * 0.37) * 3)
const tensor = (name: string, v: Float32Array, dtype: DType.WritableDType = "F32", delay = 0): TensorRef.TensorRef => {
  const ref = TensorRef.fromBytes(name, dtype, [v.length], DType.fromNumbers(v, dtype))
  return delay === 0 ? ref : { ...ref, read: (range) => Effect.delay(ref.read(range), `${delay} millis`) }
}

describe("TensorBuffers", () => {
  it("reads tensors larger than a chunk exactly, in any dtype, and reuses the buffers for the next tensor", async () => {
    const buffers = TensorBuffers.make()
    const n = (1 << 20) * 2 + 5
    const a = values(1, n), b = values(2, n)
    const seen: Array<ArrayBufferLike> = []
    await Effect.runPromise(buffers.read([tensor("a", a), tensor("b", b, "BF16")], (arrays) => Effect.sync(() => {
      expect(arrays[0]).toEqual(a)
      expect(arrays[1]).toEqual(DType.toFloat32(DType.fromNumbers(b, "BF16"), "BF16"))
      seen.push(...arrays.map((x) => x.buffer))
    })))
    const small = values(3, 1000)
    await Effect.runPromise(buffers.read([tensor("s", small, "F16"), tensor("t", small)], (arrays) => Effect.sync(() => {
      expect(arrays[0]).toEqual(DType.toFloat32(DType.fromNumbers(small, "F16"), "F16"))
      expect(arrays[1]).toEqual(small)
      expect(arrays.map((x) => x.buffer)).toEqual(seen)
      expect(buffers.owns(arrays[0]!)).toBe(true)
    })))
    expect(buffers.owns(new Float32Array(4))).toBe(false)
    buffers.release()
    await Effect.runPromise(buffers.read([tensor("t", small)], (arrays) => Effect.sync(() => expect(arrays[0]!.buffer).not.toBe(seen[0]))))
  })

  it("gives a read that starts while another holds the buffers its own arrays", async () => {
    const buffers = TensorBuffers.make()
    const a = values(4, 5000), b = values(5, 5000)
    const [first, second] = await Effect.runPromise(Effect.all([
      buffers.read([tensor("a", a, "F32", 5)], (arrays) => Effect.as(Effect.sleep("20 millis"), { array: arrays[0]!, copy: arrays[0]!.slice() })),
      buffers.read([tensor("b", b, "F32", 1)], (arrays) => Effect.succeed({ array: arrays[0]!, copy: arrays[0]!.slice() }))
    ], { concurrency: "unbounded" }))
    expect(first.copy).toEqual(a)
    expect(second.copy).toEqual(b)
    expect(first.array.buffer).not.toBe(second.array.buffer)
    expect([first.array, second.array].filter((x) => buffers.owns(x))).toHaveLength(1)
  })

  it("allocates shared memory when asked, and frees the buffers for the next read after a failure", async () => {
    const buffers = TensorBuffers.make({ shared: true })
    const a = values(6, 300)
    const failing: TensorRef.TensorRef = { ...tensor("bad", a), read: () => Effect.fail({ _tag: "TestReadError", message: "cannot read bad" }) }
    const error = await Effect.runPromise(Effect.flip(buffers.read([failing], () => Effect.void)))
    expect(error.message).toBe("cannot read bad")
    await Effect.runPromise(buffers.read([tensor("a", a)], (arrays) => Effect.sync(() => {
      expect(arrays[0]!.buffer).toBeInstanceOf(SharedArrayBuffer)
      expect(arrays[0]).toEqual(a)
      expect(buffers.owns(arrays[0]!)).toBe(true)
    })))
  })
})
