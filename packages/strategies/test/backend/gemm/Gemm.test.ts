import { assert, describe, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs-core"
import { ConfigProvider, Context, Effect, Exit, Layer, Scope } from "effect"
import { afterAll, beforeAll } from "vitest"
import { Backend, initialise } from "../../../src/backend/Backend.ts"
import * as Attach from "../../../src/backend/gemm/Attach.ts"
import * as Gemm from "../../../src/backend/gemm/Gemm.ts"
import * as Kernel from "../../../src/backend/gemm/Kernel.ts"
import * as Threads from "../../../src/backend/gemm/Threads.ts"
import * as WasmKernels from "../../../src/backend/gemm/WasmKernels.ts"

/** Seeded uniform values in [-1, 1) (a 32-bit LCG: the same numbers on every run). */
const uniform = (seed: number, length: number): Float32Array => {
  let s = seed >>> 0
  return Float32Array.from({ length }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 31 - 1
  })
}

interface Case {
  readonly batchA: ReadonlyArray<number>
  readonly batchB: ReadonlyArray<number>
  readonly m: number
  readonly n: number
  readonly k: number
  readonly transposeA: boolean
  readonly transposeB: boolean
  readonly bias?: "n" | "1"
  readonly relu?: boolean
}

/**
 * The float64 product of `c` and, per output element, the bound its float32 result must meet:
 * γ·Σₖ|a·b| (+|bias|) with γ = 2·(K + 2)·2⁻²⁴, twice the classical forward-error bound of a
 * length-K float32 dot product (K·u / (1 − K·u), u = 2⁻²⁴) plus the bias addition — whatever
 * the order of summation (panels, k-chunks) and with or without fused multiply-adds.
 */
const reference = (c: Case, a: Float32Array, b: Float32Array, bias: Float32Array | undefined) => {
  const { pairs, shape } = Gemm.broadcastPairs(c.batchA, c.batchB)!
  const { m, n, k } = c
  const values = new Float64Array(pairs.length * m * n)
  const bounds = new Float64Array(pairs.length * m * n)
  const gamma = 2 * (k + 2) * 2 ** -24
  pairs.forEach(([ia, ib], o) => {
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0, abs = 0
        for (let kk = 0; kk < k; kk++) {
          const x = a[ia * m * k + (c.transposeA ? kk * m + i : i * k + kk)]! * b[ib * k * n + (c.transposeB ? j * k + kk : kk * n + j)]!
          s += x
          abs += Math.abs(x)
        }
        if (bias !== undefined) {
          const v = bias.length === 1 ? bias[0]! : bias[j]!
          s += v
          abs += Math.abs(v)
        }
        if (c.relu === true) s = Math.max(0, s)
        values[(o * m + i) * n + j] = s
        bounds[(o * m + i) * n + j] = gamma * abs + 1e-30
      }
  })
  return { values, bounds, shape: [...shape, m, n], pairs }
}

const inputs = (c: Case, seed: number) => {
  const size = (shape: ReadonlyArray<number>) => shape.reduce((t, d) => t * d, 1)
  const a = uniform(seed, size(c.batchA) * c.m * c.k)
  const b = uniform(seed + 1, size(c.batchB) * c.k * c.n)
  const bias = c.bias === undefined ? undefined : uniform(seed + 2, c.bias === "n" ? c.n : 1)
  return { a, b, bias }
}

const expectWithin = (label: string, got: ArrayLike<number>, want: { values: Float64Array; bounds: Float64Array }) => {
  assert.strictEqual(got.length, want.values.length, `${label}: length`)
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i]! - want.values[i]!)
    if (!(err <= want.bounds[i]!)) assert.fail(`${label}: element ${i} is ${got[i]}, float64 gives ${want.values[i]} (error ${err} > bound ${want.bounds[i]})`)
  }
}

// Odd sizes (not multiples of the 4×8 tile), k beyond one 256-deep chunk, every transpose,
// broadcast batches, bias of N or 1 value, relu.
const CASES: ReadonlyArray<Case> = [
  { batchA: [], batchB: [], m: 1, n: 1, k: 1, transposeA: false, transposeB: false },
  { batchA: [], batchB: [], m: 13, n: 17, k: 300, transposeA: false, transposeB: false },
  { batchA: [], batchB: [], m: 13, n: 17, k: 300, transposeA: true, transposeB: false, bias: "n", relu: true },
  { batchA: [], batchB: [], m: 37, n: 9, k: 600, transposeA: false, transposeB: true, bias: "1" },
  { batchA: [], batchB: [], m: 6, n: 8, k: 5, transposeA: true, transposeB: true, relu: true },
  { batchA: [3], batchB: [3], m: 7, n: 33, k: 65, transposeA: false, transposeB: false },
  { batchA: [2, 1], batchB: [3], m: 11, n: 5, k: 257, transposeA: true, transposeB: true },
  { batchA: [1], batchB: [4], m: 50, n: 70, k: 31, transposeA: false, transposeB: true, bias: "n" },
  { batchA: [], batchB: [], m: 130, n: 200, k: 513, transposeA: true, transposeB: false }
]

const describeCase = (c: Case) =>
  `[${c.batchA}]${c.m}×${c.k}${c.transposeA ? "ᵀ" : ""} · [${c.batchB}]${c.k}×${c.n}${c.transposeB ? "ᵀ" : ""}${c.bias === undefined ? "" : ` + bias(${c.bias})`}${c.relu === true ? ", relu" : ""}`

describe("gemm kernel", () => {
  it("assembles a module this runtime validates", () => {
    assert.isTrue(WebAssembly.validate(Kernel.moduleBytes(false)))
    assert.isDefined(Kernel.compile())
  })

  it("broadcasts batch shapes as NumPy does", () => {
    assert.deepStrictEqual(Gemm.broadcastPairs([2, 1], [3]), { shape: [2, 3], pairs: [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]] })
    assert.deepStrictEqual(Gemm.broadcastPairs([], [2]), { shape: [2], pairs: [[0, 0], [0, 1]] })
    assert.isUndefined(Gemm.broadcastPairs([2], [3]))
  })
})

describe("gemm on threads", () => {
  const pools: Array<Threads.Threads> = []
  beforeAll(async () => {
    pools.push(await Threads.start(1), await Threads.start(3))
  })
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.close()))
  })

  it("transposes batches of matrices bit for bit, in tiles with ragged edges", () => {
    const [batch, rows, cols] = [3, 37, 130]
    const x = uniform(7, batch * rows * cols)
    for (const pool of pools) {
      const out = new Float32Array(x.length)
      Gemm.transpose(pool, x, batch, rows, cols, () => out)
      for (let b = 0; b < batch; b++)
        for (let r = 0; r < rows; r++)
          for (let c = 0; c < cols; c++) {
            if (out[(b * cols + c) * rows + r] !== x[(b * rows + r) * cols + c]) assert.fail(`element (${b}, ${r}, ${c}) on ${pool.threads} thread(s)`)
          }
    }
    assert.deepStrictEqual(Gemm.asBatchTranspose([4, 5], [1, 0]), { batch: 1, rows: 4, cols: 5 })
    assert.deepStrictEqual(Gemm.asBatchTranspose([2, 4, 5], [0, 2, 1]), { batch: 2, rows: 4, cols: 5 })
    assert.deepStrictEqual(Gemm.asBatchTranspose([2, 4, 5], [1, 2, 0]), { batch: 1, rows: 2, cols: 20 })
    assert.deepStrictEqual(Gemm.asBatchTranspose([2, 1, 5], [0, 2, 1]), undefined)
    assert.isUndefined(Gemm.asBatchTranspose([2, 4, 5, 3], [0, 2, 1, 3]))
  })

  it("matches a float64 reference on odd shapes, transposes, broadcast batches, bias and relu, on 1 and 3 threads", () => {
    CASES.forEach((c, index) => {
      const { a, b, bias } = inputs(c, 100 + index)
      const want = reference(c, a, b, bias)
      const batchA = c.batchA.reduce((t, d) => t * d, 1), batchB = c.batchB.reduce((t, d) => t * d, 1)
      for (const pool of pools) {
        const out = new Float32Array(want.values.length)
        Gemm.multiply(pool, { a, b, batchA, batchB, m: c.m, n: c.n, k: c.k, transposeA: c.transposeA, transposeB: c.transposeB, pairs: want.pairs, bias, relu: c.relu }, () => out)
        expectWithin(`${describeCase(c)} on ${pool.threads} thread(s)`, out, want)
      }
    })
  })
})

const withEnv = (env: Record<string, string>) => Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(env)))

describe("gemm as the wasm backend's matMul", () => {
  it.effect("tf.matMul and tf.fused.matMul run on it and match float64; the layer's end restores XNNPACK's kernels", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(Backend.layer("wasm").pipe(withEnv({ CRUCIBLE_GEMM_THREADS: "2" })), scope)
      const backend = Context.get(context, Backend)
      assert.strictEqual(backend.name, "wasm")
      assert.isTrue(WasmKernels.isInstalled())
      // Big enough to pass the FLOP threshold, small enough for a quick float64 reference.
      const cases: ReadonlyArray<Case> = [
        { batchA: [], batchB: [], m: 70, n: 90, k: 130, transposeA: false, transposeB: false },
        { batchA: [], batchB: [], m: 70, n: 90, k: 130, transposeA: true, transposeB: true },
        { batchA: [2, 1], batchB: [3], m: 33, n: 40, k: 300, transposeA: false, transposeB: true }, // XNNPACK's kernel gets this one wrong (3 products, not 6)
        { batchA: [], batchB: [], m: 64, n: 100, k: 90, transposeA: false, transposeB: false, bias: "n", relu: true }
      ]
      cases.forEach((c, index) => {
        const { a, b, bias } = inputs(c, 200 + index)
        const want = reference(c, a, b, bias)
        const got = tf.tidy(() => {
          const ta = tf.tensor(a, [...c.batchA, ...(c.transposeA ? [c.k, c.m] : [c.m, c.k])])
          const tb = tf.tensor(b, [...c.batchB, ...(c.transposeB ? [c.n, c.k] : [c.k, c.n])])
          const product =
            bias === undefined && c.relu !== true
              ? tf.matMul(ta, tb, c.transposeA, c.transposeB)
              : tf.fused.matMul({ a: ta as tf.Tensor2D, b: tb as tf.Tensor2D, transposeA: c.transposeA, transposeB: c.transposeB, ...(bias === undefined ? {} : { bias: tf.tensor1d(bias) }), activation: c.relu === true ? "relu" : "linear" })
          assert.deepStrictEqual(product.shape, want.shape)
          return product.dataSync() as Float32Array
        })
        expectWithin(`tf ${describeCase(c)}`, got, want)
      })
      const transposed = tf.tidy(() => {
        const x = tf.tensor(uniform(9, 3 * 90 * 200), [3, 90, 200])
        return [tf.transpose(x, [0, 2, 1]).dataSync(), tf.transpose(x, [2, 0, 1]).dataSync(), x.dataSync()] as const
      })
      const [t021, t201, x] = transposed
      for (let b = 0; b < 3; b++)
        for (let r = 0; r < 90; r++)
          for (let c = 0; c < 200; c++) {
            const v = x[(b * 90 + r) * 200 + c]
            if (t021[(b * 200 + c) * 90 + r] !== v || t201[(c * 3 + b) * 90 + r] !== v) assert.fail(`tf.transpose: element (${b}, ${r}, ${c})`)
          }
      // Under the threshold the stock kernel answers, exactly.
      const small = tf.tidy(() => Array.from(tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6, 7, 8], [2, 2])).dataSync()))
      assert.deepStrictEqual(small, [19, 22, 43, 50])
      yield* Scope.close(scope, Exit.void)
      assert.isFalse(WasmKernels.isInstalled())
      assert.isFalse(Attach.isAttached())
    })
  )

  it.effect("CRUCIBLE_GEMM_THREADS=0 keeps the stock kernels", () =>
    Effect.gen(function* () {
      const attached = yield* Effect.scoped(Effect.provide(Effect.sync(() => WasmKernels.isInstalled()), Backend.layer("wasm").pipe(withEnv({ CRUCIBLE_GEMM_THREADS: "0" }))))
      assert.isFalse(attached)
    })
  )

  // Last: what it attaches stays for the rest of this file's process (as the runner's does).
  it.effect("initialise by itself attaches for the process, not for the scope around it (a runner stage's)", () =>
    Effect.gen(function* () {
      yield* Effect.scoped(initialise("wasm").pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ CRUCIBLE_GEMM_THREADS: "2" })))))
      assert.strictEqual(WasmKernels.installedThreads(), 2)
      // A later layer finds it attached and leaves it so when it ends.
      yield* Effect.scoped(Effect.provide(Backend, Backend.layer("wasm").pipe(withEnv({ CRUCIBLE_GEMM_THREADS: "3" }))))
      assert.strictEqual(WasmKernels.installedThreads(), 2)
    })
  )
})
