/**
 * A compiled mergekit config as Crucible pipeline YAML (`crucible import`): the file a user would
 * write, which — saved beside the config and run — does the same merge. Notes of the compiler
 * (what was accepted without effect) come first, as comments.
 *
 * @since 0.1.0
 */
import { stringify } from "yaml"
import type { PipelineIR } from "../pipeline/Ir.ts"

/** The pipeline YAML of an IR, with `notes` as leading comments. @category formatting */
export const toYaml = (ir: PipelineIR, notes: ReadonlyArray<string> = []): string => {
  const file = {
    version: ir.version,
    name: ir.name,
    ...(ir.description === undefined ? {} : { description: ir.description }),
    stages: Object.fromEntries(ir.stages.map((s) => [s.id, { uses: s.uses, with: s.with, ...(s.needs.length > 0 ? { needs: s.needs } : {}) }]))
  }
  const header = notes.map((n) => `# note: ${n}\n`).join("")
  return `${header}${stringify(file, { lineWidth: 0, flowCollectionPadding: false })}`
}
