/**
 * `crucible convert IN OUT`: the programmatic conversion behind the command — read any format
 * lazily, cast if asked, write atomically — with the same functions the `load`, `save` and
 * `convert` stages use.
 *
 * @since 0.1.0
 */
import { ByteSize, Cast, DType, Formats, IoError } from "@crucible/core"
import { Effect, Result } from "effect"
import * as path from "node:path"

/** @category models */
export interface ConvertOptions {
  readonly dtype?: string | undefined
  readonly shardSize?: string | undefined
  readonly format?: "safetensors" | "tfjs" | undefined
  readonly key?: string | undefined
}

/** Converts `input` into `output`. */
export const convert = (input: string, output: string, options: ConvertOptions = {}) =>
  Effect.scoped(
    Effect.gen(function* () {
      const dtype = options.dtype === undefined ? undefined : DType.parseWritable(options.dtype)
      if (options.dtype !== undefined && dtype === undefined) {
        return yield* new IoError.InvalidArgument({ argument: "dtype", value: options.dtype, detail: "use F32, F16, BF16, F64, an integer dtype, or a torch name like bfloat16" })
      }
      const shardSize = options.shardSize === undefined ? undefined : ByteSize.parseByteSize(options.shardSize)
      if (shardSize !== undefined && Result.isFailure(shardSize)) return yield* shardSize.failure
      const model = yield* Formats.readModel(path.resolve(input), options.key === undefined ? {} : { key: options.key })
      return yield* Formats.writeModel(path.resolve(output), dtype === undefined ? model : Cast.cast(model, dtype), {
        ...(options.format === undefined ? {} : { format: options.format }),
        ...(shardSize === undefined ? {} : { shardSize: shardSize.success })
      })
    })
  )
