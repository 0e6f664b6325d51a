/**
 * @crucible/runner — runs pipelines: the programmatic API (`Runner.run`, `Runner.runPromise`),
 * the plan, the run events, telemetry, and the `crucible` CLI (its `bin`).
 *
 * ```ts
 * import { Runner } from "@crucible/runner"
 * const result = await Runner.runPromise("pipeline.yaml")        // or a .ts file, a Builder, an IR
 * console.log(result.status, result.runDir)                      // manifest.json, trace.json, report.html…
 * ```
 *
 * @since 0.1.0
 */
export * as Runner from "./Runner.ts"
export * as Planner from "./Planner.ts"
export * as PipelineSource from "./PipelineSource.ts"
export * as KindModules from "./KindModules.ts"
export * as KindCatalog from "./KindCatalog.ts"
export * as PipelineSchema from "./PipelineSchema.ts"
export { KindModuleError } from "./KindModules.ts"
export { Reporter, type RunEvent, type StageStatus } from "./Events.ts"
export * as Telemetry from "./telemetry/Telemetry.ts"
