// The device's buffer pool (src/gpu/BufferPool.ts) as the kernels use it through GpuMerge
// (Device.scoped, Device.readBack): a merge run twice makes no new buffer the second time, the
// idle bytes stay within the budget, and a kernel that fails or is interrupted gives every buffer
// back. Reuse is counted by the pool's own counters, not timed.
import { Effect, Exit, Fiber, Result } from "effect"
import { beforeEach, describe, expect, it } from "vitest"
import * as BufferPool from "../../../src/gpu/BufferPool.ts"
import * as Device from "../../../src/merge/gpu/Device.ts"
import * as GpuRange from "../../../src/merge/gpu/RangeWise.ts"
import * as GpuTask from "../../../src/merge/gpu/TaskArithmetic.ts"
import { GpuMerge } from "../../../src/merge/GpuMerge.ts"
import type { PackedInput } from "../../../src/merge/kernels/PackedInput.ts"
import * as Kernel from "../../../src/merge/kernels/TaskArithmetic.ts"
import { family } from "../kernels/helpers.ts"
import { gpuHandle, skipWithoutGpu } from "./support.ts"

beforeEach((context) => skipWithoutGpu(context))

const n = 30_011
const { base, models } = family(21, n, 3)
const plan = Result.getOrThrow(Kernel.plan({ ...Kernel.presets.ties, weights: [1, 0.5, 0.8], density: 0.3 }, [n], 3, "t"))
const packed: Array<PackedInput> = [base, ...models].map((v) => ({ bytes: new Uint8Array(v.buffer.slice(0)), dtype: "F32" }))

// A GpuMerge of the suite's device with its own pool (counters of this test alone).
const withPool = async (budget?: number) => {
  const handle = await gpuHandle()
  const pool = BufferPool.make(handle.device, budget)
  const service = GpuMerge.of({ device: handle.device, info: handle.info, pipelines: handle.pipelines, buffers: pool })
  const run = <A, E>(effect: Effect.Effect<A, E, GpuMerge>) => Effect.runPromiseExit(Effect.provideService(effect, GpuMerge, service))
  return { device: handle.device, pool, run }
}

describe("the GPU buffer pool", () => {
  it("size classes: 4–7·2ᵏ bytes, at most 25% over the request, capped by the binding limit", () => {
    for (const bytes of [1, 16, 255, 257, 1000, 4096, 4097, 123_457, 3 * 2 ** 20 + 5]) {
      const size = BufferPool.sizeClass(bytes, 2 ** 30)
      expect(size).toBeGreaterThanOrEqual(bytes)
      expect(size % 16).toBe(0)
      if (bytes > 256) expect(size).toBeLessThanOrEqual(Math.ceil(bytes * 1.25 / 16) * 16 + 16)
    }
    expect(BufferPool.sizeClass(1000, 2 ** 30)).toBe(1024)
    expect(BufferPool.sizeClass(1100, 2 ** 30)).toBe(1280)
    // Past the cap the request is made at its own size (rounded to 16).
    expect(BufferPool.sizeClass(1100, 1200)).toBe(1104)
  })

  it("a merge run twice takes every buffer of the second run from the pool (TIES, range-wise, read-backs)", async () => {
    const { device, pool, run } = await withPool()
    const once = Effect.gen(function* () {
      yield* GpuTask.merge(device, plan, base, models)
      const prepared = yield* GpuRange.prepare(device, plan, packed)
      yield* GpuRange.apply(device, prepared, packed, 0, n, { squares: true })
    })
    expect(Exit.isSuccess(await run(once))).toBe(true)
    const first = pool.stats()
    expect(first.created).toBeGreaterThan(5)
    expect(first.outstanding).toBe(0)
    expect(Exit.isSuccess(await run(once))).toBe(true)
    const second = pool.stats()
    expect(second.created).toBe(first.created)
    expect(second.reused).toBeGreaterThanOrEqual(first.created + first.reused)
    expect(second.destroyed).toBe(0)
    expect(second.outstanding).toBe(0)
    expect(second.idleBytes).toBeLessThanOrEqual(second.budget)
  })

  it("the budget bounds the idle bytes: buffers beyond it are destroyed; close destroys the rest", async () => {
    const budget = 64 * 1024
    const { device, pool, run } = await withPool(budget)
    // The inputs' buffer alone (4 × 30,011 float32) is past the budget.
    expect(Exit.isSuccess(await run(GpuTask.merge(device, plan, base, models)))).toBe(true)
    const stats = pool.stats()
    expect(stats.idleBytes).toBeLessThanOrEqual(budget)
    expect(stats.idle).toBeGreaterThan(0)
    expect(stats.destroyed).toBeGreaterThan(0)
    expect(stats.outstanding).toBe(0)
    pool.close()
    expect(pool.stats()).toMatchObject({ idle: 0, idleBytes: 0, destroyed: stats.destroyed + stats.idle })
    // After close, nothing is kept.
    expect(Exit.isSuccess(await run(GpuTask.merge(device, plan, base, models)))).toBe(true)
    expect(pool.stats()).toMatchObject({ idle: 0, outstanding: 0 })
  })

  it("a failing or interrupted kernel gives its buffers back", async () => {
    const { device, pool, run } = await withPool()
    // A dispatch the device refuses (a pipeline given one binding of the three it declares): GpuKernelError.
    const failing = Device.scoped(device, ({ storage, uniform }) =>
      Effect.gen(function* () {
        const x = storage(4 * n, "test.x")
        uniform(new Uint32Array(4), "test.params")
        storage(4096, "test.y")
        const pipe = yield* Device.pipeline(device, "test.copy", `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(${Device.WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) { if (gid.x < arrayLength(&y)) { y[gid.x] = x[gid.x]; } }`)
        return yield* Device.run(device, "test.copy", (e) => Device.dispatch(e, device, pipe, [x], n))
      }))
    const exit = await run(failing)
    expect(Exit.isFailure(exit)).toBe(true)
    expect(String(Exit.isFailure(exit) ? exit.cause : "")).toContain("GpuKernelError")
    expect(pool.stats()).toMatchObject({ created: 3, outstanding: 0, idle: 3 })
    // A read-back of a destroyed buffer fails: its read-back buffer comes back too (kept or destroyed).
    const gone = device.createBuffer({ size: 64, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC })
    gone.destroy()
    expect(Exit.isFailure(await run(Device.readBack(device, gone, 64, "test.read")))).toBe(true)
    expect(pool.stats().outstanding).toBe(0)
    // Interrupted while merging: every buffer taken so far comes back.
    const before = pool.stats()
    const interrupted = await run(Effect.gen(function* () {
      const fiber = yield* Effect.forkChild(GpuTask.merge(device, plan, base, models))
      // Interrupted once it holds buffers (its first histogram pass is under way).
      while (pool.stats().outstanding === 0) yield* Effect.sleep(1)
      yield* Fiber.interrupt(fiber)
      return yield* Fiber.await(fiber)
    }))
    expect(Exit.isSuccess(interrupted) && Exit.hasInterrupts(interrupted.value)).toBe(true)
    expect(pool.stats().created + pool.stats().reused).toBeGreaterThan(before.created + before.reused)
    expect(pool.stats().outstanding).toBe(0)
  })
})
