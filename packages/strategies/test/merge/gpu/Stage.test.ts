// Merge stages with `GpuMerge` provided run their tensors on the GPU and agree with the CPU stage
// within the kernels' stated bounds; without it they are the CPU stage (same bytes).
import { DType, Model, TensorRef } from "@crucible/core"
import { Effect, Layer, Result } from "effect"
import { beforeEach, describe, expect, it } from "vitest"
import * as GpuSlerp from "../../../src/merge/gpu/Slerp.ts"
import * as GpuSum from "../../../src/merge/gpu/WeightedSum.ts"
import { GpuMerge } from "../../../src/merge/GpuMerge.ts"
import * as Kernel from "../../../src/merge/kernels/TaskArithmetic.ts"
import * as SlerpKernel from "../../../src/merge/kernels/Slerp.ts"
import { Slerp } from "../../../src/merge/Spherical.ts"
import { TaskArithmetic, Ties } from "../../../src/merge/TaskArithmetic.ts"
import { decodeParams } from "../../decodeParams.ts"
import { family } from "../kernels/helpers.ts"
import { device, gpuHandle, skipWithoutGpu } from "./support.ts"
import { compare, cpuMerge } from "./tiesCompare.ts"

beforeEach((context) => skipWithoutGpu(context))

const SHAPES: Record<string, Array<number>> = { "layers.0.weight": [96, 80], "layers.0.bias": [96] }
const N = 3
const data = Object.fromEntries(Object.entries(SHAPES).map(([t, s], k) => [t, family(k + 1, s[0]! * (s[1] ?? 1), N)]))
const modelOf = (name: string, pick: (f: { base: Float32Array; models: Array<Float32Array> }) => Float32Array) =>
  Model.make(name, Object.entries(SHAPES).map(([t, s]) => TensorRef.fromBytes(t, "F32", s, DType.fromNumbers(pick(data[t]!), "F32"))))
const base = modelOf("base", (f) => f.base)
const models = Array.from({ length: N }, (_, i) => modelOf(`ft${i}`, (f) => f.models[i]!))

const context = { id: "m", resolvePath: (p: string) => p, runDir: "/nonexistent", cacheDir: "/nonexistent", dryRun: false }

/** Runs a stage (on the GPU when `gpu`) and reads every output tensor as float32. */
const run = async (kind: typeof Ties | typeof TaskArithmetic | typeof Slerp, label: string, params: object, inputs: object, gpu: boolean) => {
  const layer = gpu ? GpuMerge.fromHandle(await gpuHandle()) : Layer.empty
  return Effect.runPromise(Effect.scoped(Effect.gen(function* () {
    const merged = yield* (kind as typeof Slerp).run({ ...context, kind: label, params: decodeParams(kind as never, params as never) as never, inputs: inputs as never })
    const out: Record<string, Float32Array> = {}
    for (const t of merged.tensors.values()) out[t.name] = new Float32Array((yield* t.read()).slice().buffer)
    return out
  })).pipe(Effect.provide(layer as Layer.Layer<GpuMerge>)))
}

describe("merge stages with GpuMerge", () => {
  it("merge/ties and merge/task-arithmetic: within the bound of the CPU stage", async () => {
    // Elements where the GPU's float32 arithmetic rounds otherwise: proof that the GPU ran.
    let differing = 0
    for (const [kind, label, params, preset] of [[Ties, "merge/ties", { density: 0.3 }, "ties"], [TaskArithmetic, "merge/task-arithmetic", { weights: [0.5, 0.3, 0.2], lambda: 1.5 }, "task-arithmetic"]] as const) {
      const cpu = await run(kind, label, params, { base, models }, false)
      const gpu = await run(kind, label, params, { base, models }, true)
      for (const [name, shape] of Object.entries(SHAPES)) {
        const { base: b, models: m } = data[name]!
        const n = b.length
        const planned = Kernel.plan({ ...Kernel.presets[preset], weights: "weights" in params ? params.weights : [1, 1, 1], density: "density" in params ? params.density : 1, lambda: "lambda" in params ? params.lambda : 1 }, shape, N, name)
        if (Result.isFailure(planned)) throw planned.failure
        const reference = cpuMerge(planned.success, b, m)
        // The CPU stage is the CPU kernel; the GPU stage is within the bound of it.
        expect(cpu[name]).toEqual(reference.out)
        expect(gpu[name]).not.toEqual(undefined)
        differing += gpu[name]!.filter((v, j) => v !== cpu[name]![j]).length
        if (preset === "ties") compare(gpu[name]!, cpu[name]!, reference.prepared, b, m)
        else {
          const c = Kernel.affineCoefficients(reference.prepared)!
          const inputs = [b, ...m]
          for (let j = 0; j < n; j++) {
            const terms = inputs.reduce((a, x, i) => a + Math.abs(c[i]! * x[j]!), 0)
            expect(Math.abs(gpu[name]![j]! - cpu[name]![j]!)).toBeLessThanOrEqual(GpuSum.bound(inputs.length, terms))
          }
        }
      }
    }
    expect(differing).toBeGreaterThan(0)
  })

  it("merge/slerp with a base: within the bound of the CPU stage", async () => {
    const dev = await device()
    const cpu = await run(Slerp, "merge/slerp", { t: 0.4 }, { base, models: models.slice(0, 2) }, false)
    const gpu = await run(Slerp, "merge/slerp", { t: 0.4 }, { base, models: models.slice(0, 2) }, true)
    for (const name of Object.keys(SHAPES)) {
      const { base: b, models: [x, y] } = data[name]!
      // The coefficients from the GPU's statistics (the same kernel on the same data) and the CPU's.
      const gram = await Effect.runPromise(GpuSlerp.statistics(dev, x!, y!, b))
      const plans = [gram, SlerpKernel.statistics(x!, y!, b)].map((g) => SlerpKernel.plan({ t: 0.4 }, g, true, name))
      const [c, c0] = plans.map((p) => (Result.isSuccess(p) ? p.success.coefficients : []))
      const inputs = [b, x!, y!]
      for (let j = 0; j < b.length; j++) {
        let terms = 0, drift = 0
        inputs.forEach((v, i) => {
          terms += Math.abs(c![i]! * v[j]!)
          drift += Math.abs(c![i]! - c0![i]!) * Math.abs(v[j]!)
        })
        expect(Math.abs(gpu[name]![j]! - cpu[name]![j]!)).toBeLessThanOrEqual(GpuSum.bound(3, terms) + drift)
      }
    }
  })
})
