/**
 * A failed Schema decode as a flat list of (path, message) — what both the YAML decoder and the
 * stage-params validator turn into positioned problems.
 *
 * @since 0.1.0
 */
import { Schema, SchemaIssue } from "effect"

/** One leaf issue of a decode. @category models */
export interface FlatIssue {
  readonly path: ReadonlyArray<string | number>
  readonly message: string
}

const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

/** The issues of a decode failure's cause (one issue with the cause's text if it holds no SchemaError). */
export const fromCause = (cause: unknown): ReadonlyArray<FlatIssue> => {
  const reasons = (cause as { reasons?: ReadonlyArray<{ error?: unknown }> }).reasons ?? []
  for (const r of reasons) {
    if (Schema.isSchemaError(r.error)) {
      return formatter(r.error.issue).issues.map((i) => ({
        message: i.message,
        path: (i.path ?? []).map((k) => (typeof k === "object" && k !== null && "key" in k ? (k.key as string | number) : (k as string | number)))
      }))
    }
  }
  return [{ path: [], message: String(cause) }]
}

/** Whether an issue is an unknown key (decoded with `onExcessProperty: "error"`). */
export const isExcess = (message: string): boolean => /excess property/i.test(message)

/** Whether an issue is a required key that is absent. */
export const isMissing = (message: string): boolean => /missing key/i.test(message)
