/**
 * A compiled mergekit config as Crucible pipeline YAML (`crucible import`): the file a user would
 * write, which — saved beside the config and run — does the same merge. Lists of scalars (model
 * references, weights, gradients, layer ranges) are written on one line, as people write them;
 * notes of the compiler (what was accepted without effect) come first, as comments.
 *
 * @since 0.1.0
 */
import { Document, isScalar, visit } from "yaml"
import type { PipelineIR } from "../pipeline/Ir.ts"

/** The pipeline YAML of an IR, with `notes` as leading comments. @category formatting */
export const toYaml = (ir: PipelineIR, notes: ReadonlyArray<string> = []): string => {
  const file = {
    version: ir.version,
    name: ir.name,
    ...(ir.description === undefined ? {} : { description: ir.description }),
    stages: Object.fromEntries(ir.stages.map((s) => [s.id, { uses: s.uses, with: s.with, ...(s.needs.length > 0 ? { needs: s.needs } : {}) }]))
  }
  // Stages share arrays (the align stages' models): written out each time, never as YAML anchors.
  const doc = new Document(file, { aliasDuplicateObjects: false })
  visit(doc, {
    Seq: (_, node) => {
      if (node.items.every(isScalar)) node.flow = true
    }
  })
  const header = notes.map((n) => `# note: ${n}\n`).join("")
  return `${header}${doc.toString({ lineWidth: 0, flowCollectionPadding: false })}`
}
