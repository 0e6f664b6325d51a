/**
 * The error of the text modules: a tokenizer or a text source that cannot be read or used. It
 * names the file (or dataset), the line when there is one, and what to change.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/** A tokenizer or text data that cannot be read or used. @category errors */
export class TextError extends Schema.TaggedError<TextError>()("TextError", {
  /** The file, folder or dataset concerned. */
  source: Schema.String,
  detail: Schema.String,
  /** 1-based line of `source`, when the problem is on one. */
  line: Schema.optional(Schema.Number)
}) {
  override get message() {
    return `${this.source}${this.line === undefined ? "" : `:${this.line}`}: ${this.detail}`
  }
}

/** The message of an unknown thrown value. @category errors */
export const describe = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))
