/**
 * What the range-wise GPU tests (RangeWise.test.ts, RangeWiseDraws.test.ts) share: packed inputs and
 * their exact float32 values, and a merge stage run end to end — on the CPU
 * or through `GpuMerge` — with every group forced range-wise (`CRUCIBLE_RANGE_WISE_BYTES=0`).
 */
import { DType, type Model } from "@crucible/core"
import { Effect, Layer } from "effect"
import { expect } from "vitest"
import type * as Gpu from "../../../src/gpu/Gpu.ts"
import { GpuMerge } from "../../../src/merge/GpuMerge.ts"
import type { PackedInput } from "../../../src/merge/kernels/PackedInput.ts"
import type { Della, Ties } from "../../../src/merge/TaskArithmetic.ts"
import { decodeParams } from "../../decodeParams.ts"

/** `values` packed as `dtype`. */
export const packedOf = (values: Float32Array, dtype: PackedInput["dtype"]): PackedInput => ({ bytes: DType.fromNumbers(values, dtype), dtype })

/** A packed input's exact float32 values (bf16/f16 decode exactly). */
export const floatsOf = (p: PackedInput) => DType.toFloat32(p.bytes.slice(), p.dtype)

/** Runs `body` with every group forced range-wise (the threshold 0), restoring the default after. */
export const forcedRangeWise = async <A>(body: () => Promise<A>): Promise<A> => {
  process.env.CRUCIBLE_RANGE_WISE_BYTES = "0"
  try {
    return await body()
  } finally {
    delete process.env.CRUCIBLE_RANGE_WISE_BYTES
  }
}

/**
 * The float32 values of `tensor` as `stage` merges it — through `GpuMerge` on `handle`, or on the
 * CPU without one — after checking its declared memory: `packedBytes`, the packed inputs, i.e. the
 * range-wise path was taken.
 */
export const stageOutput = (
  stage: typeof Ties | typeof Della,
  params: Record<string, unknown>,
  inputs: { readonly base: Model.Model; readonly models: ReadonlyArray<Model.Model> },
  tensor: string,
  packedBytes: number,
  handle: Gpu.GpuHandle | undefined
): Promise<Float32Array> => {
  const context = { id: "m", kind: stage.kind, resolvePath: (p: string) => p, runDir: "/nonexistent", cacheDir: "/nonexistent", dryRun: false }
  return Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const merged = yield* stage.run({ ...context, params: decodeParams(stage as never, params as never) as never, inputs })
    const t = merged.tensors.get(tensor)!
    expect(t.lineage?._tag === "Derived" ? t.lineage.memory.bytes : undefined).toBe(packedBytes)
    return new Float32Array((yield* t.read()).slice().buffer)
  })).pipe(Effect.provide(handle !== undefined ? GpuMerge.fromHandle(handle) : Layer.empty as unknown as Layer.Layer<GpuMerge>)))
}
