/**
 * mergekit configs as they are: detection, compilation to pipeline IR, model references (local
 * folders and the Hugging Face cache) and the equivalent pipeline YAML.
 *
 * @since 0.1.0
 */
export { type Compiled, compile, type Options } from "./Compile.ts"
export { isMergekit } from "./Documents.ts"
export { toYaml } from "./Emit.ts"
export * as Keys from "./Keys.ts"
export * as Methods from "./Methods.ts"
export * as ModelRef from "./ModelRef.ts"
export * as Parameters from "./Parameters.ts"
