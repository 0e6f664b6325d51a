/**
 * The failures of writing a Hugging Face output folder, each naming the folder (and file).
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/** A folder (or a file in it) that an output folder needs cannot be used. @category errors */
export class HfFolderError extends Schema.TaggedError<HfFolderError>()("HfFolderError", {
  folder: Schema.String,
  file: Schema.optional(Schema.String),
  detail: Schema.String
}) {
  override get message() {
    return `${this.file === undefined ? this.folder : `${this.folder}/${this.file}`}: ${this.detail}`
  }
}
