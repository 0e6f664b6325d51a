/**
 * Shared helpers of the model I/O tests: fixture paths, reading a whole model into float64
 * values, decoding the expected values the fixture generator (PyTorch/numpy) recorded,
 * running an effect to its typed failure, seeded bytes and CRUCIBLE_DIRECT_READS for the direct I/O tests.
 */
import { Cause, Effect, Exit, Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type * as Model from "../../src/model/Model.ts"
import { toFloat64, type DType } from "../../src/tensor/DType.ts"

/** The committed fixtures (see fixtures/make_fixtures.py). */
export const fixture = (...parts: Array<string>): string => path.join(import.meta.dirname, "..", "..", "fixtures", ...parts)

/** A fresh temporary directory, removed when the scope closes. */
export const tempDir = (prefix = "crucible-io-"): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), prefix))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

/** A tensor read whole, as float64 values. */
export interface Values {
  readonly dtype: DType
  readonly shape: ReadonlyArray<number>
  readonly values: Float64Array
}

/** Reads every tensor of a model. */
export const readAll = (model: Model.Model) =>
  Effect.gen(function* () {
    const out: Record<string, Values> = {}
    for (const [name, t] of model.tensors) out[name] = { dtype: t.dtype, shape: t.shape, values: toFloat64(yield* t.read(), t.dtype) }
    return out
  })

/** The JSON the generator writes for a tensor: non-finite values are strings. */
export interface ExpectedJson {
  readonly dtype: string
  readonly shape: ReadonlyArray<number>
  readonly values: ReadonlyArray<number | string>
}

/** Loads a JSON fixture. */
export const json = <A = any>(...parts: Array<string>): A => JSON.parse(fs.readFileSync(fixture(...parts), "utf8")) as A

export const decodeNumbers = (values: ReadonlyArray<number | string>): Float64Array =>
  Float64Array.from(values, (v) => (v === "nan" ? NaN : v === "inf" ? Infinity : v === "-inf" ? -Infinity : (v as number)))

/** Compares read tensors with the generator's expected tensors, value for value (NaN equals NaN). */
export const sameTensors = (actual: Record<string, Values>, expected: Record<string, ExpectedJson>): Array<string> => {
  const problems: Array<string> = []
  const names = Object.keys(expected)
  if (JSON.stringify(Object.keys(actual)) !== JSON.stringify(names)) problems.push(`names ${Object.keys(actual).join(",")} != ${names.join(",")}`)
  for (const name of names) {
    const a = actual[name]
    const e = expected[name]!
    if (a === undefined) continue
    if (a.dtype !== e.dtype) problems.push(`${name}: dtype ${a.dtype} != ${e.dtype}`)
    if (JSON.stringify(a.shape) !== JSON.stringify(e.shape)) problems.push(`${name}: shape ${a.shape} != ${e.shape}`)
    const ev = decodeNumbers(e.values)
    if (a.values.length !== ev.length) problems.push(`${name}: ${a.values.length} values != ${ev.length}`)
    for (let i = 0; i < ev.length; i++) {
      if (!Object.is(a.values[i], ev[i]) && !(a.values[i] === ev[i])) {
        problems.push(`${name}[${i}]: ${a.values[i]} != ${ev[i]}`)
        break
      }
    }
  }
  return problems
}

/** Runs `effect` expecting a typed failure and returns it (a defect or a success fails the test). */
export const failure = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<E, never, R> =>
  Effect.flatMap(Effect.exit(effect), (exit) => {
    if (Exit.isSuccess(exit)) return Effect.die(new Error(`expected a failure, got a success: ${String(exit.value).slice(0, 200)}`))
    const error = Cause.findErrorOption(exit.cause)
    if (error._tag === "None") return Effect.die(new Error(`expected a typed failure, got: ${Cause.pretty(exit.cause)}`))
    return Effect.succeed(error.value)
  })

/** Writes bytes to a file in `dir` and returns its path. */
export const writeFile = (dir: string, name: string, bytes: Uint8Array | string): string => {
  const file = path.join(dir, name)
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, bytes)
  return file
}

/** `size` seeded bytes (xorshift32 from `seed`, little-endian words): the same bytes on every run. */
export const seededBytes = (size: number, seed: number): Uint8Array => {
  const words = new Uint32Array(Math.ceil(size / 4))
  let x = seed
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    words[i] = x >>> 0
  }
  return new Uint8Array(words.buffer, 0, size)
}

/** Runs `effect` with CRUCIBLE_DIRECT_READS set to `value` (unset when undefined), restoring it after. */
export const withDirectReads = <A, E, R>(value: string | undefined, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const before = process.env["CRUCIBLE_DIRECT_READS"]
      if (value === undefined) delete process.env["CRUCIBLE_DIRECT_READS"]
      else process.env["CRUCIBLE_DIRECT_READS"] = value
      return before
    }),
    () => effect,
    (before) => Effect.sync(() => (before === undefined ? delete process.env["CRUCIBLE_DIRECT_READS"] : (process.env["CRUCIBLE_DIRECT_READS"] = before)))
  )
