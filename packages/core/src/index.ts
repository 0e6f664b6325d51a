/**
 * @crucible/core — the vocabulary of Crucible: dtypes and lazy tensors, model formats, the
 * pipeline IR (YAML and builder), the stage contract and the registry.
 *
 * @since 0.1.0
 */
export * as DType from "./tensor/DType.ts"
export * as TensorRef from "./tensor/TensorRef.ts"
export * as Lineage from "./tensor/Lineage.ts"
export * as Model from "./model/Model.ts"
export * as Cast from "./model/Cast.ts"
export * as ByteSource from "./io/ByteSource.ts"
export * as ReadCounter from "./io/ReadCounter.ts"
export * as AtomicFile from "./io/AtomicFile.ts"
export * as Digest from "./io/Digest.ts"
export * as IoError from "./io/IoError.ts"
export * as Safetensors from "./io/safetensors/Safetensors.ts"
export * as Sharded from "./io/safetensors/Sharded.ts"
export * as Torch from "./io/torch/Torch.ts"
export * as Tfjs from "./io/tfjs/Tfjs.ts"
export * as TfjsLayout from "./io/tfjs/Layout.ts"
export * as Zip from "./io/zip/Zip.ts"
export * as ByteSize from "./io/ByteSize.ts"
export * as Formats from "./io/Formats.ts"
export * as Port from "./pipeline/Port.ts"
export * as Stage from "./pipeline/Stage.ts"
export * as Registry from "./pipeline/Registry.ts"
export * as Ir from "./pipeline/Ir.ts"
export * as Problem from "./pipeline/Problem.ts"
export * as PipelineError from "./pipeline/PipelineError.ts"
export * as Validate from "./pipeline/Validate.ts"
export * as Yaml from "./pipeline/Yaml.ts"
export * as Limits from "./pipeline/Limits.ts"
export * as Builder from "./pipeline/Builder.ts"
export * as StageKey from "./pipeline/StageKey.ts"
export * as MemoryBudget from "./pipeline/MemoryBudget.ts"
export * as Check from "./pipeline/Check.ts"
/** "did you mean …?" and approximate substring distance, for messages that suggest a fix. */
export * as Suggest from "./internal/suggest.ts"
