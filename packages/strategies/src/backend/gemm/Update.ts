/**
 * Fused optimizer updates as TF.js kernels of the wasm backend: `CrucibleAdamUpdate` (inputs
 * `param`, `grad`, `m`, `v` → outputs `param'`, `m'`, `v'`) and `CrucibleSgdUpdate` (`param`,
 * `grad`, `buf` → `param'`, `buf'`), each one pass over memory in WebAssembly SIMD instead of
 * the ~12 element-wise TF.js ops (each a pass, each with its per-op overhead) of the chain in
 * `train/Optimizer.ts`.
 *
 * The pass computes exactly the chain's float32 operations in the chain's order (`f32x4` add,
 * sub, mul, div and sqrt are correctly rounded, as XNNPACK's element-wise kernels are; no fused
 * multiply-add), with the chain's scalars rounded to float32 as TF.js rounds a scalar operand,
 * so the results are meant to be the chain's bits (the test checks this, and a float64 bound).
 *
 * It runs on the calling thread, in TF.js's own heap: our module imports the backend's memory
 * (not shared: TF.js's wasm build for Node is single-threaded), reads the inputs where they
 * are and writes new output tensors (inputs are never written: their data may be shared). The
 * GEMM's threads only see their own shared memory, and copying four inputs in and three outputs
 * out would cost the main thread about as much as the whole pass.
 *
 * `install` registers both kernels for the wasm backend (with the GEMM: `Attach.attach`) and
 * returns the function that unregisters them; `train/Optimizer.ts` uses them when registered for
 * the active backend.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs-core"
import * as Wasm from "../../merge/kernels/Wasm.ts"

/** Kernel names. @category constants */
export const ADAM_UPDATE = "CrucibleAdamUpdate", SGD_UPDATE = "CrucibleSgdUpdate"

/** Attributes of `CrucibleAdamUpdate` (PyTorch 1.13's names; `step` counts from 1). @category models */
export interface AdamAttrs {
  readonly lr: number
  readonly beta1: number
  readonly beta2: number
  readonly eps: number
  readonly weightDecay: number
  readonly step: number
  /** `adamw`'s decoupled decay (`θ·(1 − lr·wd)`) instead of `adam`'s `∇ + wd·θ`. */
  readonly decoupled: boolean
}

/** Attributes of `CrucibleSgdUpdate`; `momentum` 0 means no buffer (its input and output are then unused). @category models */
export interface SgdAttrs {
  readonly lr: number
  readonly momentum: number
  readonly nesterov: boolean
  readonly weightDecay: number
}

const F32 = 0x7d
const I32 = Wasm.I32, V128 = Wasm.V128
const simd = Wasm.simd
const o = Wasm.op
type Code = ReadonlyArray<number>
const get = (l: number): Code => o.localGet(l)
const bin = (code: number) => (a: Code, b: Code): Array<number> => [...a, ...b, ...simd(code)]
const add = bin(0xe4), sub = bin(0xe5), mul = bin(0xe6), div = bin(0xe7)
const sqrt = (a: Code): Array<number> => [...a, ...simd(0xe3)]
const load = (ptr: number): Array<number> => [...get(ptr), ...o.v128Load(0)]
const store = (ptr: number, value: Code): Array<number> => [...get(ptr), ...value, ...o.v128Store(0)]
const set = (l: number, value: Code): Array<number> => [...value, ...o.localSet(l)]
const splat = (scalar: number, into: number): Array<number> => [...get(scalar), ...simd(0x13), ...o.localSet(into)]
const bump16 = (ptrs: ReadonlyArray<number>): Array<number> => ptrs.flatMap((p) => Wasm.bump(p, 16))
const { countDown } = Wasm

/** Weight decay in the Adam pass: none, `adam`'s (added to the gradient), `adamw`'s (decoupled). */
type AdamDecay = "none" | "l2" | "decoupled"

/**
 * `adam_<decay>(θ, g, m, v, θ', m', v', blocks, wd, decay, β₁, 1−β₁, β₂, 1−β₂, √(1−β₂ᵗ), ε, stepSize)`
 * over `blocks` groups of 4 floats (pointers in bytes), in the chain's order:
 * `g ← ∇ + θ·wd`; `base ← θ·decay`; `m' ← m·β₁ + g·(1−β₁)`; `v' ← v·β₂ + (g·g)·(1−β₂)`;
 * `θ' ← base − (m' / (√v' / √(1−β₂ᵗ) + ε))·stepSize`.
 */
const adamFunc = (decay: AdamDecay): Wasm.Func => {
  const th = 0, gr = 1, m = 2, v = 3, oth = 4, om = 5, ov = 6, n = 7
  const scalars = 8 // 9 f32 params
  const wd = 17, dc = 18, b1 = 19, c1 = 20, b2 = 21, c2 = 22, bc2 = 23, eps = 24, ss = 25
  const t = 26, g = 27, mn = 28, vn = 29
  const theta = get(t)
  const body: Array<number> = [
    ...set(t, load(th)),
    ...set(g, decay === "l2" ? add(load(gr), mul(theta, get(wd))) : load(gr)),
    ...set(mn, add(mul(load(m), get(b1)), mul(get(g), get(c1)))),
    ...set(vn, add(mul(load(v), get(b2)), mul(mul(get(g), get(g)), get(c2)))),
    ...store(om, get(mn)),
    ...store(ov, get(vn)),
    ...store(oth, sub(decay === "decoupled" ? mul(theta, get(dc)) : theta, mul(div(get(mn), add(div(sqrt(get(vn)), get(bc2)), get(eps))), get(ss)))),
    ...bump16([th, gr, m, v, oth, om, ov])
  ]
  const code = [...Array.from({ length: 9 }, (_, i) => splat(scalars + i, wd + i)).flat(), ...countDown(n, body)]
  return { name: `adam_${decay}`, params: [...Array<number>(8).fill(I32), ...Array<number>(9).fill(F32)], results: [], locals: [[13, V128]], code }
}

/**
 * `sgd_<wd><momentum><nesterov>(θ, g, buf, θ', buf', blocks, wd, μ, lr)`: `g ← ∇ + θ·wd`;
 * `buf' ← buf·μ + g`; `g ← buf'` (`g + buf'·μ` with Nesterov); `θ' ← θ − g·lr`.
 */
const sgdFunc = (decay: boolean, momentum: boolean, nesterov: boolean): Wasm.Func => {
  const th = 0, gr = 1, buf = 2, oth = 3, obuf = 4, n = 5
  const wd = 9, mu = 10, lr = 11, t = 12, g = 13, next = 14
  const body: Array<number> = [
    ...set(t, load(th)),
    ...set(g, decay ? add(load(gr), mul(get(t), get(wd))) : load(gr)),
    ...(momentum
      ? [...set(next, add(mul(load(buf), get(mu)), get(g))), ...store(obuf, get(next)), ...set(g, nesterov ? add(get(g), mul(get(next), get(mu))) : get(next))]
      : []),
    ...store(oth, sub(get(t), mul(get(g), get(lr)))),
    ...bump16(momentum ? [th, gr, buf, oth, obuf] : [th, gr, oth])
  ]
  const code = [...splat(6, wd), ...splat(7, mu), ...splat(8, lr), ...countDown(n, body)]
  return { name: sgdName(decay, momentum, nesterov), params: [...Array<number>(6).fill(I32), F32, F32, F32], results: [], locals: [[6, V128]], code }
}
const sgdName = (decay: boolean, momentum: boolean, nesterov: boolean) => `sgd_${+decay}${+momentum}${+nesterov}`

/** The module's bytes (it imports a memory that is not shared: TF.js's). @category constructors */
const moduleBytes = (): Uint8Array<ArrayBuffer> => {
  const funcs: Array<Wasm.Func> = (["none", "l2", "decoupled"] as const).map(adamFunc)
  for (const decay of [false, true]) for (const momentum of [false, true]) for (const nesterov of momentum ? [false, true] : [false]) funcs.push(sgdFunc(decay, momentum, nesterov))
  return Wasm.module(funcs, false)
}

type AdamExport = (th: number, gr: number, m: number, v: number, oth: number, om: number, ov: number, blocks: number, ...scalars: Array<number>) => void
type SgdExport = (th: number, gr: number, buf: number, oth: number, obuf: number, blocks: number, wd: number, mu: number, lr: number) => void

/** The float32 scalars of an Adam step, from the attributes as the chain computes them (in float64, then rounded as TF.js rounds a scalar). */
const adamScalars = (a: AdamAttrs): Array<number> =>
  [a.weightDecay, 1 - a.lr * a.weightDecay, a.beta1, 1 - a.beta1, a.beta2, 1 - a.beta2, Math.sqrt(1 - a.beta2 ** a.step), a.eps, a.lr / (1 - a.beta1 ** a.step)].map(Math.fround)

const decayOf = (a: AdamAttrs): AdamDecay => (a.weightDecay > 0 ? (a.decoupled ? "decoupled" : "l2") : "none")

/**
 * The same step on plain arrays with `Math.fround` after each operation (float64 then rounded:
 * exactly the float32 operation for +, −, ×, ÷, √), for elements `from` to `to`: the tail of
 * fewer than 4 floats the SIMD loop leaves.
 */
const adamTail = (a: AdamAttrs, x: { th: Float32Array; g: Float32Array; m: Float32Array; v: Float32Array; oth: Float32Array; om: Float32Array; ov: Float32Array }, from: number, to: number) => {
  const [wd, dc, b1, c1, b2, c2, bc2, eps, ss] = adamScalars(a) as [number, number, number, number, number, number, number, number, number]
  const f = Math.fround, decay = decayOf(a)
  for (let i = from; i < to; i++) {
    const t = x.th[i]!
    const g = decay === "l2" ? f(x.g[i]! + f(t * wd)) : x.g[i]!
    const mn = f(f(x.m[i]! * b1) + f(g * c1))
    const vn = f(f(x.v[i]! * b2) + f(f(g * g) * c2))
    x.om[i] = mn
    x.ov[i] = vn
    x.oth[i] = f((decay === "decoupled" ? f(t * dc) : t) - f(f(mn / f(f(f(Math.sqrt(vn)) / bc2) + eps)) * ss))
  }
}

const sgdTail = (a: SgdAttrs, x: { th: Float32Array; g: Float32Array; buf: Float32Array; oth: Float32Array; obuf: Float32Array }, from: number, to: number) => {
  const f = Math.fround, wd = f(a.weightDecay), mu = f(a.momentum), lr = f(a.lr)
  for (let i = from; i < to; i++) {
    const t = x.th[i]!
    let g = a.weightDecay > 0 ? f(x.g[i]! + f(t * wd)) : x.g[i]!
    if (a.momentum > 0) {
      const next = f(f(x.buf[i]! * mu) + g)
      x.obuf[i] = next
      g = a.nesterov ? f(g + f(next * mu)) : next
    }
    x.oth[i] = f(t - f(g * lr))
  }
}

interface HeapBackend {
  readonly dataIdMap: { get(dataId: object): { readonly memoryOffset: number } | undefined }
  readonly wasm: { readonly asm: { readonly memory: WebAssembly.Memory } }
  makeOutput(shape: ReadonlyArray<number>, dtype: tf.DataType): tf.TensorInfo
}

/** The update kernels could not run on these inputs (the optimizer passes float32 tensors of one shape). */
const check = (kernel: string, inputs: ReadonlyArray<readonly [string, tf.TensorInfo]>): number => {
  const size = tf.util.sizeFromShape(inputs[0]![1].shape)
  for (const [name, t] of inputs) {
    if (t.dtype !== "float32" || tf.util.sizeFromShape(t.shape) !== size)
      throw new Error(`${kernel}: input ${name} is ${t.dtype} [${t.shape.join(", ")}], expected float32 of the parameter's ${size} values`)
  }
  return size
}

/**
 * Registers `CrucibleAdamUpdate` and `CrucibleSgdUpdate` for the wasm backend; the returned
 * function unregisters them. The module is instantiated on the first call, on the memory of the
 * backend that runs it (kept per backend object, in this closure).
 *
 * @category constructors
 */
export const install = (): (() => void) => {
  if (tf.getKernel(ADAM_UPDATE, "wasm") !== undefined) return () => {}
  const module = new WebAssembly.Module(moduleBytes())
  const instances = new WeakMap<object, Record<string, Function>>()
  const exportsOf = (backend: HeapBackend) => {
    let x = instances.get(backend)
    if (x === undefined) {
      x = new WebAssembly.Instance(module, { env: { memory: backend.wasm.asm.memory } }).exports as Record<string, Function>
      instances.set(backend, x)
    }
    return x
  }
  const offset = (backend: HeapBackend, t: tf.TensorInfo) => backend.dataIdMap.get(t.dataId)!.memoryOffset
  const floats = (backend: HeapBackend, t: tf.TensorInfo, size: number) => new Float32Array(backend.wasm.asm.memory.buffer, offset(backend, t), size)

  const adam: tf.KernelFunc = ({ inputs, attrs, backend: b }) => {
    const backend = b as unknown as HeapBackend
    const { param, grad, m, v } = inputs as Record<"param" | "grad" | "m" | "v", tf.TensorInfo>
    const a = attrs as unknown as AdamAttrs
    const size = check(ADAM_UPDATE, [["param", param], ["grad", grad], ["m", m], ["v", v]])
    // Outputs first: allocating may grow the heap; offsets are taken after.
    const outs = [param, m, v].map((t) => backend.makeOutput(t.shape, "float32"))
    const [oth, om, ov] = outs as [tf.TensorInfo, tf.TensorInfo, tf.TensorInfo]
    const blocks = size >> 2
    ;(exportsOf(backend)[`adam_${decayOf(a)}`] as AdamExport)(
      offset(backend, param), offset(backend, grad), offset(backend, m), offset(backend, v), offset(backend, oth), offset(backend, om), offset(backend, ov), blocks, ...adamScalars(a)
    )
    if (blocks * 4 < size) {
      const view = (t: tf.TensorInfo) => floats(backend, t, size)
      adamTail(a, { th: view(param), g: view(grad), m: view(m), v: view(v), oth: view(oth), om: view(om), ov: view(ov) }, blocks * 4, size)
    }
    return outs
  }

  const sgd: tf.KernelFunc = ({ inputs, attrs, backend: b }) => {
    const backend = b as unknown as HeapBackend
    const { param, grad, buf } = inputs as Record<"param" | "grad" | "buf", tf.TensorInfo>
    const a = attrs as unknown as SgdAttrs
    const momentum = a.momentum > 0
    const size = check(SGD_UPDATE, momentum ? [["param", param], ["grad", grad], ["buf", buf]] : [["param", param], ["grad", grad]])
    const outs = (momentum ? [param, buf] : [param]).map((t) => backend.makeOutput(t.shape, "float32"))
    const oth = outs[0]!, obuf = outs[1] ?? oth
    const ibuf = momentum ? buf : param
    const blocks = size >> 2
    ;(exportsOf(backend)[sgdName(a.weightDecay > 0, momentum, momentum && a.nesterov)] as SgdExport)(
      offset(backend, param), offset(backend, grad), offset(backend, ibuf), offset(backend, oth), offset(backend, obuf), blocks,
      Math.fround(a.weightDecay), Math.fround(a.momentum), Math.fround(a.lr)
    )
    if (blocks * 4 < size) {
      const view = (t: tf.TensorInfo) => floats(backend, t, size)
      sgdTail(a, { th: view(param), g: view(grad), buf: view(ibuf), oth: view(oth), obuf: view(obuf) }, blocks * 4, size)
    }
    return outs
  }

  tf.registerKernel({ kernelName: ADAM_UPDATE, backendName: "wasm", kernelFunc: adam })
  tf.registerKernel({ kernelName: SGD_UPDATE, backendName: "wasm", kernelFunc: sgd })
  return () => {
    tf.unregisterKernel(ADAM_UPDATE, "wasm")
    tf.unregisterKernel(SGD_UPDATE, "wasm")
  }
}

/** Whether `kernel` (`ADAM_UPDATE`, `SGD_UPDATE`) is registered for the active backend. @category predicates */
export const available = (kernel: string): boolean => tf.getKernel(kernel, tf.getBackend()) !== undefined
