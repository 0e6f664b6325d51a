// The runner on a GPU (WebGPU through Dawn, here on lavapipe): the stages that run on the device
// take its slot one at a time while a CPU stage runs beside them, their spans name the adapter, the
// manifest records it, and a merge on `--backend webgpu` agrees with the CPU run within the bound
// the GPU kernels state. Skipped (with the reason) where lavapipe is not installed, except in CI.
import { Port, Registry, Stage } from "@crucible/core"
import { GpuMerge } from "@crucible/strategies/merge/GpuMerge"
import * as tf from "@tensorflow/tfjs-core"
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { Reporter } from "../../src/Events.ts"
import * as Runner from "../../src/Runner.ts"
import { readModel, writeModel } from "./models.ts"
import { skipWithoutGpu } from "../support/Gpu.ts"

interface Span {
  readonly name: string
  readonly start: bigint
  readonly end: bigint
  readonly attributes: Record<string, unknown>
}

// trace.json is OTLP JSON: attribute values are { stringValue | intValue | boolValue | doubleValue }.
const spansOf = (runDir: string): ReadonlyArray<Span> => {
  const trace = JSON.parse(fs.readFileSync(path.join(runDir, "trace.json"), "utf8")) as {
    resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<{ name: string; startTimeUnixNano: string; endTimeUnixNano: string; attributes: Array<{ key: string; value: Record<string, unknown> }> }> }> }>
  }
  return trace.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)).map((s) => ({
    name: s.name,
    start: BigInt(s.startTimeUnixNano),
    end: BigInt(s.endTimeUnixNano),
    attributes: Object.fromEntries(s.attributes.map((a) => [a.key, Object.values(a.value)[0]]))
  }))
}

const latch = () => {
  let open!: () => void
  const opened = new Promise<void>((resolve) => (open = resolve))
  return { open, opened }
}

const STAGE_TIMEOUT = 60_000

describe("the runner on a GPU (webgpu)", () => {
  it("two GPU stages take the device one at a time while a CPU stage runs beside both; spans and the manifest name the adapter", async (context) => {
    skipWithoutGpu(context)
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-gpu-pool-"))
    // The GPU stages wait for the CPU stage to start; the CPU stage ends only once both GPU stages
    // have started. Without the device's slot the two GPU stages would run at once (concurrency 3);
    // with it the second starts once the first is done, and the CPU stage spans both. No timing:
    // each wait is for an event the other stages cause.
    const cpuStarted = latch()
    let gpuStarted = 0
    const bothGpuStarted = latch()
    let active = 0
    let mostActive = 0
    const onGpu = <A, E, R>(work: Effect.Effect<A, E, R>) =>
      Effect.gen(function* () {
        active++
        mostActive = Math.max(mostActive, active)
        if (++gpuStarted === 2) bothGpuStarted.open()
        yield* Effect.promise(() => cpuStarted.opened)
        return yield* Effect.ensuring(work, Effect.sync(() => void active--))
      })

    // A TF.js stage (resources.backend): a matmul on the webgpu backend, checked against float64.
    const TfStage = Stage.define({
      kind: "test/tf-matmul",
      version: 1,
      description: "a matmul on the backend",
      params: Schema.Struct({ n: Schema.Int }),
      inputs: {},
      output: Port.MetricsPort,
      resources: { backend: true },
      run: ({ params }) =>
        onGpu(Effect.promise(async () => {
          const n = params.n
          const a = Float32Array.from({ length: n * n }, (_, i) => ((i * 7) % 13) / 13 - 0.5)
          const b = Float32Array.from({ length: n * n }, (_, i) => ((i * 5) % 11) / 11 - 0.5)
          const [ta, tb] = [tf.tensor2d(a, [n, n]), tf.tensor2d(b, [n, n])]
          const tc = tf.matMul(ta, tb)
          const c = await tc.data()
          tf.dispose([ta, tb, tc])
          let worst = 0
          for (let i = 0; i < n; i++) {
            for (let j = 0; j < n; j++) {
              let exact = 0
              let terms = 0
              for (let k = 0; k < n; k++) {
                exact += a[i * n + k]! * b[k * n + j]!
                terms += Math.abs(a[i * n + k]! * b[k * n + j]!)
              }
              // float32 dot product of n terms: |err| ≤ n·2⁻²⁴·Σ|aₖbₖ| (+ slack for the final rounding).
              worst = Math.max(worst, Math.abs(c[i * n + j]! - exact) / ((n + 1) * 2 ** -24 * terms + 1e-30))
            }
          }
          return { values: { worstOverBound: worst, backend: tf.getBackend() === "webgpu" ? 1 : 0 } }
        }))
    })

    // A stage that declares `resources.device: "gpu"`: a WGSL kernel on the GpuMerge device.
    const WgslStage = Stage.define({
      kind: "test/wgsl",
      version: 1,
      description: "x ↦ 2x + 1 on the GPU",
      params: Schema.Struct({ n: Schema.Int }),
      inputs: {},
      output: Port.MetricsPort,
      resources: { device: "gpu" },
      run: ({ params }) =>
        onGpu(Effect.gen(function* () {
          const gpu = yield* Effect.serviceOption(GpuMerge)
          if (gpu._tag === "None") return { values: { ranOnGpu: 0 } }
          const device = gpu.value.device
          const input = Float32Array.from({ length: params.n }, (_, i) => i / 8 - 3)
          const out = yield* Effect.promise(() => doubleAndOne(device, input))
          // Exact in float32: 2x + 1 of these x (multiples of 1/8, |x| < 2¹⁰) is representable.
          const exact = out.every((y, i) => y === 2 * input[i]! + 1)
          return { values: { ranOnGpu: 1, exact: exact ? 1 : 0 } }
        }))
    })

    const CpuStage = Stage.define({
      kind: "test/cpu",
      version: 1,
      description: "waits for both GPU stages to have started",
      params: Schema.Struct({}),
      inputs: {},
      output: Port.MetricsPort,
      run: () =>
        Effect.gen(function* () {
          cpuStarted.open()
          yield* Effect.promise(() => bothGpuStarted.opened)
          return { values: { waited: 1 } }
        })
    })

    fs.writeFileSync(path.join(dir, "p.yaml"), `version: 1
name: gpu-pool
stages:
  tf: { uses: test/tf-matmul, with: { n: 48 } }
  wgsl: { uses: test/wgsl, with: { n: 1000 } }
  cpu: { uses: test/cpu, with: {} }
`)
    const result = await Effect.runPromise(Runner.run(path.join(dir, "p.yaml"), {
      kinds: Registry.make([TfStage, WgslStage, CpuStage]),
      runsDir: path.join(dir, "runs"),
      backend: "webgpu",
      concurrency: 3
    }).pipe(Effect.provideService(Reporter, Reporter.silent)))
    expect(result.status, JSON.stringify(result.outcomes.map((o) => o.error))).toBe("succeeded")
    const values = Object.fromEntries(result.outcomes.map((o) => [o.id, (o.value as { values: Record<string, number> }).values]))
    expect(values["tf"]).toMatchObject({ backend: 1 })
    expect(values["tf"]!.worstOverBound).toBeLessThanOrEqual(1)
    expect(values["wgsl"]).toEqual({ ranOnGpu: 1, exact: 1 })
    expect(mostActive).toBe(1)

    // The stage spans (which the GPU stages open and end holding the slot): the GPU stages' do not
    // overlap; the CPU stage's covers both. (Events are emitted outside the slot: a stage's
    // "finished" may follow the next GPU stage's "started".)
    const spans = spansOf(result.runDir)
    const span = (id: string) => spans.find((s) => s.name === `stage ${id}`)!
    const [first, second] = span("tf").start < span("wgsl").start ? [span("tf"), span("wgsl")] : [span("wgsl"), span("tf")]
    expect(first.end <= second.start, `${first.name} ends at ${first.end}, ${second.name} starts at ${second.start}`).toBe(true)
    expect(span("cpu").start < first.end && span("cpu").end > second.start).toBe(true)

    // Spans: the GPU stages carry the device, the adapter and the GPU memory TF.js held; the CPU one says cpu.
    const stage = (id: string) => span(id).attributes
    for (const id of ["tf", "wgsl"]) {
      expect(stage(id)["crucible.device"]).toBe("gpu")
      expect(String(stage(id)["crucible.gpu.adapter"])).toMatch(/\S/)
      expect(stage(id)["crucible.gpu.memory.peak_bytes"]).toBeDefined()
    }
    // The matmul's three 48×48 float32 tensors were on the device at once (a, b, and c until
    // disposed), in buffers TF.js's pool keeps: its high-water mark is at least their bytes.
    expect(Number(stage("tf")["crucible.gpu.memory.peak_bytes"])).toBeGreaterThanOrEqual(3 * 48 * 48 * 4)
    expect(stage("cpu")["crucible.device"]).toBe("cpu")
    expect(stage("cpu")["crucible.gpu.adapter"]).toBeUndefined()

    const manifest = JSON.parse(fs.readFileSync(path.join(result.runDir, "manifest.json"), "utf8")) as { tools: Record<string, string> }
    expect(manifest.tools["gpu"]).toBe(stage("tf")["crucible.gpu.adapter"])
  }, STAGE_TIMEOUT * 2)

  it("a merge on --backend webgpu agrees with the CPU run within the weighted sum's stated bound; its span names the adapter; a merge without a GPU kernel is a CPU stage", async (context) => {
    skipWithoutGpu(context)
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "crucible-gpu-merge-"))
    const specs = [{ name: "w", shape: [96, 65] }, { name: "b", shape: [65] }]
    const inputs = await Promise.all(["a", "b", "c"].map((m, i) => writeModel(path.join(dir, `${m}.safetensors`), specs, 31 + i)))
    const weights = [0.5, 0.3, 0.2]
    const pipeline = (out: string) => `version: 1
name: gpu-merge
stages:
  a: { uses: load, with: { path: a.safetensors } }
  b: { uses: load, with: { path: b.safetensors } }
  c: { uses: load, with: { path: c.safetensors } }
  merged: { uses: merge/linear, with: { models: [a, b, c], weights: [${weights.join(", ")}] } }
  out: { uses: save, with: { model: merged, path: ${out} } }
  stock: { uses: merge/model-stock, with: { base: a, models: [b, c] } }
  stocked: { uses: save, with: { model: stock, path: stock-${out} } }
`
    fs.writeFileSync(path.join(dir, "cpu.yaml"), pipeline("cpu.safetensors"))
    fs.writeFileSync(path.join(dir, "gpu.yaml"), pipeline("gpu.safetensors"))
    const run = (file: string, backend?: string) =>
      Effect.runPromise(Runner.run(path.join(dir, file), { runsDir: path.join(dir, "runs"), cache: false, ...(backend === undefined ? {} : { backend }) }).pipe(Effect.provideService(Reporter, Reporter.silent)))
    // The CPU run first: TF.js's backend is one per process, and webgpu stays once started.
    const cpu = await run("cpu.yaml", "cpu")
    const gpu = await run("gpu.yaml", "webgpu")
    expect([cpu.status, gpu.status]).toEqual(["succeeded", "succeeded"])
    const [cpuOut, gpuOut] = await Promise.all([readModel(path.join(dir, "cpu.safetensors")), readModel(path.join(dir, "gpu.safetensors"))])
    // The bound the GPU weighted sum states (strategies/src/merge/gpu/WeightedSum.ts, the strategies
    // README's "GPU kernels"): |gpu − cpu| ≤ (N + 2)·2⁻²⁴·Σ|cᵢxᵢ| + N·2⁻¹²⁶, cᵢ the normalised weights.
    const total = weights.reduce((a, b) => a + b, 0)
    const N = weights.length
    for (const { name } of specs) {
      const c = cpuOut.get(name)!.values
      const g = gpuOut.get(name)!.values
      expect(g.length).toBe(c.length)
      for (let j = 0; j < c.length; j++) {
        const terms = inputs.reduce((s, m, i) => s + Math.abs((weights[i]! / total) * m.get(name)![j]!), 0)
        const bound = (N + 2) * 2 ** -24 * terms + N * 2 ** -126
        if (Math.abs(g[j]! - c[j]!) > bound) expect.fail(`${name}[${j}]: gpu ${g[j]} vs cpu ${c[j]} differ by more than ${bound}`)
      }
    }
    const spans = spansOf(gpu.runDir)
    const merged = spans.find((s) => s.name === "stage merged")!.attributes
    expect(merged["crucible.device"]).toBe("gpu")
    expect(String(merged["crucible.gpu.adapter"])).toMatch(/\S/)
    expect(spansOf(cpu.runDir).find((s) => s.name === "stage merged")!.attributes["crucible.device"]).toBe("cpu")
    // Its tensors were summed on the GPU (StreamSum annotates the read each range is summed under).
    expect(spans.some((s) => s.attributes["crucible.merge.device"] === "gpu")).toBe(true)
    expect(spansOf(cpu.runDir).some((s) => s.attributes["crucible.merge.device"] !== undefined)).toBe(false)
    // merge/model-stock has no GPU kernel: it declares no device, so it is a CPU stage on a GPU run.
    const stock = spans.find((s) => s.name === "stage stock")!.attributes
    expect(stock["crucible.device"]).toBe("cpu")
    expect(stock["crucible.gpu.adapter"]).toBeUndefined()
  }, STAGE_TIMEOUT * 2)
})

/** y = 2x + 1 for each element, in a WGSL compute shader, read back through a mappable buffer. */
const doubleAndOne = async (device: GPUDevice, input: Float32Array<ArrayBuffer>): Promise<Float32Array> => {
  // GPUBufferUsage / GPUMapMode values (WebGPU spec), as numbers: the test needs no globals of Dawn's.
  const STORAGE = 0x80, COPY_SRC = 0x04, COPY_DST = 0x08, MAP_READ = 0x01, READ = 0x01
  const module = device.createShaderModule({
    code: `@group(0) @binding(0) var<storage, read_write> data: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  if (id.x < arrayLength(&data)) { data[id.x] = data[id.x] * 2.0 + 1.0; }
}`
  })
  const pipeline = device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } })
  const data = device.createBuffer({ size: input.byteLength, usage: STORAGE | COPY_SRC | COPY_DST })
  const readback = device.createBuffer({ size: input.byteLength, usage: MAP_READ | COPY_DST })
  device.queue.writeBuffer(data, 0, input)
  const encoder = device.createCommandEncoder()
  const pass = encoder.beginComputePass()
  pass.setPipeline(pipeline)
  pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: data } }] }))
  pass.dispatchWorkgroups(Math.ceil(input.length / 64))
  pass.end()
  encoder.copyBufferToBuffer(data, 0, readback, 0, input.byteLength)
  device.queue.submit([encoder.finish()])
  await readback.mapAsync(READ)
  const out = new Float32Array(readback.getMappedRange().slice(0))
  readback.unmap()
  data.destroy()
  readback.destroy()
  return out
}
