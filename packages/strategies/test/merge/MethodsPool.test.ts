// merge/nuslerp, merge/karcher, merge/sce, merge/nearswap and merge/arcee-fusion through the stage:
// with CRUCIBLE_MERGE_THREADS=2 a tensor of at least StagePool.MIN_ELEMENTS merges on the pool
// (its `Parallel.*` span is seen), a small one in the calling thread, and every output tensor has
// the bytes of the run with one thread.
import { DType, Model, TensorRef } from "@crucible/core"
import { Effect, Tracer } from "effect"
import { describe, expect, it } from "vitest"
import { ArceeFusion } from "../../src/merge/ArceeFusion.ts"
import { Karcher } from "../../src/merge/Karcher.ts"
import { NearSwap } from "../../src/merge/NearSwap.ts"
import { NuSlerp } from "../../src/merge/NuSlerp.ts"
import { Sce } from "../../src/merge/Sce.ts"
import { MIN_ELEMENTS } from "../../src/merge/StagePool.ts"
import { decodeParams } from "../decodeParams.ts"

const SHAPES: Record<string, Array<number>> = { "layers.0.weight": [520, 521], "layers.0.bias": [520] }
const numel = (shape: ReadonlyArray<number>) => shape.reduce((a, b) => a * b, 1)
const wave = (seed: number, n: number, around?: Float32Array) =>
  Float32Array.from({ length: n }, (_, i) => (around?.[i] ?? 0) + Math.round(Math.sin(seed * 7919 + i * 0.013) * (around === undefined ? 1 : 0.05) * 4096) / 4096)
const modelOf = (name: string, seed: number, around?: Record<string, Float32Array>) => {
  const data = Object.fromEntries(Object.entries(SHAPES).map(([t, s], k) => [t, wave(seed + k, numel(s), around?.[t])]))
  return { data, model: Model.make(name, Object.entries(data).map(([t, v]) => TensorRef.fromBytes(t, "F32", SHAPES[t]!, DType.fromNumbers(v, "F32")))) }
}
const base = modelOf("base", 0)
const fineTunes = [1, 2, 3].map((m) => modelOf(`ft${m}`, 10 * m, base.data))

const context = { id: "m", resolvePath: (p: string) => p, runDir: "/nonexistent", cacheDir: "/nonexistent", dryRun: false }

/** Runs the stage with `threads`, reads every tensor; returns the bytes and the names of the spans. */
const run = (kind: typeof NuSlerp, params: Record<string, unknown>, withBase: boolean, models: number, threads: string) => {
  const spans: Array<string> = []
  const tracer = Tracer.make({ span: (options) => (spans.push(options.name), new Tracer.NativeSpan(options)) })
  process.env.CRUCIBLE_MERGE_THREADS = threads
  return Effect.runPromise(Effect.provideService(Effect.scoped(Effect.gen(function* () {
    const inputs = { models: fineTunes.slice(0, models).map((m) => m.model), ...(withBase ? { base: base.model } : {}) }
    const merged = yield* kind.run({ ...context, kind: kind.kind, params: decodeParams(kind as never, params as never) as never, inputs: inputs as never })
    const out: Record<string, Uint8Array> = {}
    for (const t of merged.tensors.values()) out[t.name] = yield* t.read()
    return { out, spans }
  })), Tracer.Tracer, tracer)).finally(() => delete process.env.CRUCIBLE_MERGE_THREADS)
}

describe("the five methods' pool forms in the stage", () => {
  it("the large test tensor is at least MIN_ELEMENTS, the small one below", () => {
    expect(numel(SHAPES["layers.0.weight"]!)).toBeGreaterThanOrEqual(MIN_ELEMENTS)
    expect(numel(SHAPES["layers.0.bias"]!)).toBeLessThan(MIN_ELEMENTS)
  })

  const cases = [
    ["merge/nuslerp", NuSlerp, { weight: [1, 3] }, true, 2, "Parallel.nuSlerp"],
    ["merge/nuslerp per row", NuSlerp, { weight: [2, 1], nuslerp_flatten: false }, false, 2, "Parallel.nuSlerp"],
    ["merge/karcher", Karcher, {}, false, 3, "Parallel.karcher"],
    ["merge/sce", Sce, { select_topk: 0.4 }, true, 3, "Parallel.sce"],
    ["merge/nearswap", NearSwap, { t: 0.01 }, true, 1, "Parallel.nearSwap"],
    ["merge/arcee-fusion", ArceeFusion, {}, true, 1, "Parallel.arceeFusion"]
  ] as const
  for (const [label, kind, params, withBase, models, span] of cases) {
    it(`${label}: the large tensor on the pool, with the bytes of one thread`, async () => {
      const one = await run(kind as unknown as typeof NuSlerp, params, withBase, models, "1")
      const pooled = await run(kind as unknown as typeof NuSlerp, params, withBase, models, "2")
      expect(one.spans).not.toContain(span)
      expect(pooled.spans.filter((s) => s === span)).toHaveLength(1)
      expect(Object.keys(pooled.out).sort()).toEqual(Object.keys(SHAPES).sort())
      for (const name of Object.keys(one.out)) expect(pooled.out[name], name).toEqual(one.out[name])
    }, 60_000)
  }
})
