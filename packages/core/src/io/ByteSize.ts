/**
 * Byte sizes as users write them in pipelines (`shard_size: 2GB`). Units follow Hugging Face's
 * `max_shard_size`: KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB powers of 1024; a bare
 * number is bytes. Case does not matter.
 *
 * @since 0.1.0
 */
import { Result } from "effect"
import { InvalidArgument } from "./IoError.ts"

const UNITS: Readonly<Record<string, number>> = {
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12,
  kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40
}

/** `"2GB"` → 2000000000, `"500MiB"` → 524288000, `4096` → 4096; a positive whole number of bytes. */
export const parseByteSize = (input: string | number): Result.Result<number, InvalidArgument> => {
  const fail = (detail: string) => Result.fail(new InvalidArgument({ argument: "byte size", value: JSON.stringify(input), detail }))
  if (typeof input === "number") {
    return Number.isSafeInteger(input) && input > 0 ? Result.succeed(input) : fail("must be a positive whole number of bytes")
  }
  const match = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$/i.exec(input)
  if (match === null) return fail('expected a number and a unit, like "2GB", "500MB" or "64MiB"')
  const unit = UNITS[(match[2] ?? "").toLowerCase() || "b"]
  if (unit === undefined) return fail(`unknown unit "${match[2]}" (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)`)
  const bytes = Math.floor(Number(match[1]) * unit)
  return Number.isSafeInteger(bytes) && bytes > 0 ? Result.succeed(bytes) : fail("must be at least one byte and at most 2^53")
}
