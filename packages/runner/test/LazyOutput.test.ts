// The executor's wrapping of a lazy stage's tensors (LazyOutput.track) keeps what the writer needs
// to take its buffers from the merge's memory: the fast read path and the memory it computes in.
import { Model, TensorRef } from "@crucible/core"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import * as LazyOutput from "../src/LazyOutput.ts"

describe("LazyOutput.track", () => {
  it("wraps a stage's own tensor keeping its fast path and the memory it computes in, and reads through them", async () => {
    const values = Uint8Array.from({ length: 64 }, (_, i) => i)
    const memory: TensorRef.TargetMemory = { take: (n) => new Uint8Array(new SharedArrayBuffer(n)), give: () => {} }
    const fastReads: Array<number> = []
    const own = TensorRef.withReadInto(
      TensorRef.fromBytes("w", "U8", [64], values),
      (range, target) => Effect.sync(() => {
        const { start, end } = TensorRef.rangeOf({ shape: [64] }, range)
        fastReads.push(start)
        target.set(values.subarray(start, end))
      }),
      memory
    )
    const plain = TensorRef.fromBytes("b", "U8", [4], values.subarray(0, 4))
    const target = new Uint8Array(32)
    const wrapped = await Effect.runPromise(Effect.useSpan("stage", (span) =>
      Effect.gen(function* () {
        const tracked = yield* LazyOutput.track({ stage: "s", span, output: Model.make("s", [own, plain]), inputs: [], origins: new WeakMap(), report: () => Effect.void })
        const w = tracked.output.tensors.get("w")!
        yield* TensorRef.readInto(w, { start: 32, end: 64 }, target)
        yield* tracked.release
        return { w, b: tracked.output.tensors.get("b")! }
      })))
    expect(wrapped.w).not.toBe(own)
    expect(TensorRef.targetMemoryOf(wrapped.w)).toBe(memory)
    expect(TensorRef.hasReadInto(wrapped.w)).toBe(true)
    expect(fastReads).toEqual([32])
    expect([...target]).toEqual([...values.subarray(32, 64)])
    // A tensor without a fast path gets none, and no memory.
    expect(TensorRef.hasReadInto(wrapped.b)).toBe(false)
    expect(TensorRef.targetMemoryOf(wrapped.b)).toBeUndefined()
  })
})
