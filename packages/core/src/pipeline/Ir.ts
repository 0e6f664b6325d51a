/**
 * The pipeline IR: what a YAML file and the TypeScript builder both compile to. It is plain
 * data — stage ids, kinds and their `with:` values as written (references are stage ids) — so
 * two pipelines are equal when their IR is, and a stage's identity can be hashed.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/** The pipeline file format's version; files say `version: 1`. */
export const FORMAT_VERSION = 1

/** The form of a stage id (also the editor schema's `pattern`). */
export const STAGE_ID = /^[A-Za-z_][A-Za-z0-9_-]*$/

/** A stage id: a YAML key usable in references and file names. */
export const StageId = Schema.String.pipe(
  Schema.check(Schema.makeFilter((s: string) => STAGE_ID.test(s) || `stage id "${s}" must start with a letter or _ and contain only letters, digits, _ and -`))
)

/** One stage as written. @category models */
export const StageNode = Schema.Struct({
  uses: Schema.String,
  with: Schema.optional(Schema.Record(Schema.String, Schema.Unknown)),
  needs: Schema.optional(Schema.Array(Schema.String)),
  description: Schema.optional(Schema.String)
})
export type StageNode = typeof StageNode.Type

/** A pipeline file as written. @category models */
export const PipelineFile = Schema.Struct({
  version: Schema.Literal(FORMAT_VERSION),
  name: Schema.String,
  description: Schema.optional(Schema.String),
  kinds: Schema.optional(Schema.Array(Schema.String)),
  stages: Schema.Record(StageId, StageNode)
})
export type PipelineFile = typeof PipelineFile.Type

/** The IR: the file's content with stage order kept and defaults filled in. @category models */
export interface PipelineIR {
  readonly version: typeof FORMAT_VERSION
  readonly name: string
  readonly description?: string | undefined
  /**
   * Modules of the user's own stage kinds (`kinds: [./my-kinds.ts]`), as written: paths relative
   * to the pipeline file. The runner imports them before it validates the stages.
   */
  readonly kinds?: ReadonlyArray<string> | undefined
  readonly stages: ReadonlyArray<IrStage>
}

/** @category models */
export interface IrStage {
  readonly id: string
  readonly uses: string
  readonly with: Readonly<Record<string, unknown>>
  readonly needs: ReadonlyArray<string>
}

/** The IR of a decoded pipeline file. */
export const fromFile = (file: PipelineFile): PipelineIR => ({
  version: FORMAT_VERSION,
  name: file.name,
  ...(file.description === undefined ? {} : { description: file.description }),
  ...(file.kinds === undefined ? {} : { kinds: file.kinds }),
  stages: Object.entries(file.stages).map(([id, s]) => ({ id, uses: s.uses, with: s.with ?? {}, needs: s.needs ?? [] }))
})
