/**
 * How op arguments cross to a worker: every Float32Array or Uint8Array argument (or array of
 * them; Uint8Arrays carry packed bf16/f16/f32 bytes) becomes an
 * {@link ArrayRef} — its shared buffer, offset and length — and the worker rebuilds views on the
 * same memory. Arrays in the arena are rebuilt on the worker's own handle of the arena memory,
 * so its SIMD kernels recognise them. Anything else is structured-cloned.
 *
 * @since 0.1.0
 */

/** A Float32Array or Uint8Array in shared memory, as sent to a worker. @category models */
export interface ArrayRef {
  readonly _ref: "f32" | "u8"
  /** Omitted for arena arrays: the worker uses its handle of the arena memory. */
  readonly buffer: SharedArrayBuffer | undefined
  readonly byteOffset: number
  readonly length: number
}

const isRef = (v: unknown): v is ArrayRef =>
  typeof v === "object" && v !== null && ((v as ArrayRef)._ref === "f32" || (v as ArrayRef)._ref === "u8")

type Shareable = Float32Array | Uint8Array
const isShareable = (v: unknown): v is Shareable => v instanceof Float32Array || v instanceof Uint8Array

/**
 * Encodes the top-level Float32Array and Uint8Array fields of `args`. Returns the name of the first field that
 * is not in shared memory instead, so the caller can report it.
 *
 * @category transfer
 */
export const encode = (
  args: Readonly<Record<string, unknown>>,
  inArena: (a: ArrayBufferView) => boolean
): { readonly encoded: Record<string, unknown> } | { readonly notShared: string } => {
  const encoded: Record<string, unknown> = {}
  for (const [field, value] of Object.entries(args)) {
    if (isShareable(value)) {
      const ref = toRef(value, inArena)
      if (ref === undefined) return { notShared: field }
      encoded[field] = ref
    } else if (Array.isArray(value) && value.length > 0 && value.every(isShareable)) {
      const refs: Array<ArrayRef> = []
      for (const [i, v] of (value as Array<Shareable>).entries()) {
        const ref = toRef(v, inArena)
        if (ref === undefined) return { notShared: `${field}[${i}]` }
        refs.push(ref)
      }
      encoded[field] = refs
    } else {
      encoded[field] = value
    }
  }
  return { encoded }
}

const toRef = (a: Shareable, inArena: (a: ArrayBufferView) => boolean): ArrayRef | undefined => {
  const _ref = a instanceof Float32Array ? "f32" : "u8"
  if (inArena(a)) return { _ref, buffer: undefined, byteOffset: a.byteOffset, length: a.length }
  if (!(a.buffer instanceof SharedArrayBuffer)) return undefined
  return { _ref, buffer: a.buffer, byteOffset: a.byteOffset, length: a.length }
}

/** Rebuilds the Float32Array and Uint8Array views of encoded arguments in this thread. @category transfer */
export const decode = (encoded: Readonly<Record<string, unknown>>, arena: WebAssembly.Memory | undefined): Record<string, unknown> => {
  const view = (r: ArrayRef): Shareable => {
    const buffer = r.buffer ?? arena?.buffer
    if (buffer === undefined) throw new Error("an arena array was sent to a worker that has no arena")
    return r._ref === "f32" ? new Float32Array(buffer, r.byteOffset, r.length) : new Uint8Array(buffer, r.byteOffset, r.length)
  }
  const args: Record<string, unknown> = {}
  for (const [field, value] of Object.entries(encoded)) {
    if (isRef(value)) args[field] = view(value)
    else if (Array.isArray(value) && value.length > 0 && value.every(isRef)) args[field] = value.map(view)
    else args[field] = value
  }
  return args
}
