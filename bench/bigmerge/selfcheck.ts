/**
 * The bench's own numeric paths checked against independent references before it runs (well under
 * a second): the generator's bf16 against a float64 recomputation rounded by core's scalar
 * converter, the comparison's ulp distance against the rank of every bf16 value, and the layout
 * against Llama-2-7B's published parameter count. `node bench/bigmerge/selfcheck.ts` runs it alone.
 */
import * as DType from "../../packages/core/src/tensor/DType.ts"
import { ordinal } from "./compare.ts"
import { fill } from "./generate.ts"
import * as Llama from "./llama.ts"

// Written out again on purpose: the reference must not share the generator's code.
const lowbias32 = (x: number): number => {
  x = (x ^ (x >>> 16)) >>> 0
  x = Number((BigInt(x) * 0x7feb352dn) & 0xffffffffn)
  x = (x ^ (x >>> 15)) >>> 0
  x = Number((BigInt(x) * 0x846ca68bn) & 0xffffffffn)
  return (x ^ (x >>> 16)) >>> 0
}

const referenceBits = (model: number, tensor: number, shape: ReadonlyArray<number>, i: number): number => {
  const [center, scale] = shape.length === 1 ? [1, 0.1 * Math.sqrt(6)] : [0, 0.02 * Math.sqrt(6)]
  const tri = (h: number) => ((h & 0xffff) + (h >>> 16)) / 65536 - 1
  // The generator computes in float64 and stores float32 (one rounding), then rounds to bf16.
  let x = center + scale * tri(lowbias32((lowbias32(tensor * 7919 + 1) + i) >>> 0))
  if (model > 0) x += 0.1 * scale * tri(lowbias32((lowbias32(tensor * 104729 + model * 15485863 + 2) + i) >>> 0))
  x = Math.fround(x)
  return DType.float32ToBF16Bits(x)
}

/** The failures found (empty when every check passes). */
export const selfCheck = (): Array<string> => {
  const failures: Array<string> = []
  // 2¹⁸ elements a case: enough that float32 values exactly halfway between two bf16 (1 in 65,536) occur.
  const n = 1 << 18, scratch = new Float32Array(n), out = new Uint16Array(n)
  for (const [model, tensor, shape, start] of [[0, 0, [32000, 4096], 0], [2, 5, [4096], 0], [1, 290, [11008, 4096], 45_000_000]] as const) {
    fill(model, tensor, shape, start, out, scratch)
    for (let j = 0; j < n; j++) {
      const want = referenceBits(model, tensor, shape, start + j)
      if (out[j] !== want) {
        failures.push(`generator: model ${model} tensor ${tensor} element ${start + j} is 0x${out[j]!.toString(16)}, the float64 reference rounds to 0x${want.toString(16)}`)
        break
      }
    }
  }
  // Every non-NaN bf16 value ranked by value (−0 and +0 one value): ordinal differences are rank differences.
  const values = new Map<number, number>()
  for (let b = 0; b < 0x10000; b++) {
    const v = DType.bf16BitsToFloat(b)
    if (!Number.isNaN(v)) values.set(b, v)
  }
  const distinct = [...new Set(values.values())].sort((a, b) => a - b)
  const rank = new Map(distinct.map((v, k) => [v, k]))
  const zero = rank.get(0)!
  for (const [b, v] of values) {
    if (ordinal(b) !== rank.get(v)! - zero) {
      failures.push(`compare: ordinal(0x${b.toString(16)}) = ${ordinal(b)}, but ${v} is ${rank.get(v)! - zero} bf16 steps from zero`)
      break
    }
  }
  const d = Llama.LLAMA_7B
  if (Llama.parameters(d) !== 6_738_415_616) failures.push(`layout: ${Llama.parameters(d)} parameters, Llama-2-7B has 6,738,415,616`)
  const shards = Llama.shards(d)
  if (shards.some((s) => s.bytes - 8 - s.header.length > Llama.MAX_SHARD_BYTES)) failures.push("layout: a shard holds more than 5 GB")
  if (Llama.index(shards).metadata.total_size !== 2 * Llama.parameters(d)) failures.push("layout: the index's total_size is not 2 bytes a parameter")
  return failures
}

if (import.meta.main) {
  const failures = selfCheck()
  console.log(failures.length === 0 ? "bigmerge self-check: all passed" : failures.join("\n"))
  process.exitCode = failures.length === 0 ? 0 : 1
}
