// A tracer that keeps every span it makes, for tests that read span names and attributes.
import { Tracer } from "effect"

/** A tracer recording its spans in `spans` (in the order they start). */
export const recordingTracer = (): { readonly tracer: Tracer.Tracer; readonly spans: Array<Tracer.Span> } => {
  const spans: Array<Tracer.Span> = []
  const tracer = Tracer.make({
    span: (options) => {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    }
  })
  return { tracer, spans }
}
