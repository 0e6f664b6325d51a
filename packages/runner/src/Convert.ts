/**
 * `crucible convert IN OUT`: the programmatic conversion behind the command — read any format
 * lazily, cast if asked, write atomically — with the same functions the `load`, `save` and
 * `convert` stages use.
 *
 * @since 0.1.0
 */
import { ByteSize, Cast, DType, Formats, IoError } from "@crucible/core"
import { Convert } from "@crucible/strategies"
import { Effect, Result, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"

/** @category models */
export interface ConvertOptions {
  readonly dtype?: string | undefined
  readonly shardSize?: string | undefined
  readonly format?: "safetensors" | "tfjs" | undefined
  readonly key?: string | undefined
}

// An output ending in a separator, or an existing folder, is a Hugging Face folder, as for `save`.
const isFolder = (output: string) =>
  output.endsWith("/") || output.endsWith(path.sep) || fs.statSync(output, { throwIfNoEntry: false })?.isDirectory() === true

/** Converts `input` into `output`: a file, or (a path ending in `/`, or a folder) the `convert` stage's Hugging Face folder. */
export const convert = (input: string, output: string, options: ConvertOptions = {}) =>
  Effect.scoped(
    Effect.gen(function* () {
      if (options.format === undefined && isFolder(output)) {
        const params = yield* Schema.decodeUnknownEffect(Convert.params)({
          from: input, path: output, ...(options.key === undefined ? {} : { key: options.key }),
          ...(options.dtype === undefined ? {} : { dtype: options.dtype }), ...(options.shardSize === undefined ? {} : { shard_size: options.shardSize })
        }).pipe(Effect.mapError((issue) => new IoError.InvalidArgument({ argument: "dtype/shard-size", value: `${options.dtype ?? ""} ${options.shardSize ?? ""}`.trim(), detail: String(issue) })))
        const base = path.resolve(path.dirname(output))
        return yield* Convert.run({ id: "convert", kind: "convert", params, inputs: {}, resolvePath: (p) => path.resolve(p), runDir: base, cacheDir: base, dryRun: false })
      }
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
