/**
 * Writes a command's text and waits until the stream has handed it to the OS. `main.ts` ends
 * the process with `process.exit` as soon as the command returns, and a write to a pipe may
 * still be queued then: without the wait, `crucible schema | jq` would get a truncated schema.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"

/** `text` and a final newline on `stream`, flushed. */
const print = (text: string, stream: NodeJS.WritableStream): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    stream.write(text.endsWith("\n") ? text : `${text}\n`, () => resume(Effect.void))
  })

/** `text` and a final newline on stdout, flushed. */
export const out = (text: string): Effect.Effect<void> => print(text, process.stdout)

/** `text` and a final newline on stderr, flushed. */
export const err = (text: string): Effect.Effect<void> => print(text, process.stderr)
