/**
 * How op arguments cross to a worker: every Float32Array argument (or array of them) becomes an
 * {@link ArrayRef} — its shared buffer, offset and length — and the worker rebuilds views on the
 * same memory. Arrays in the arena are rebuilt on the worker's own handle of the arena memory,
 * so its SIMD kernels recognise them. Anything else is structured-cloned.
 *
 * @since 0.1.0
 */

/** A Float32Array in shared memory, as sent to a worker. @category models */
export interface ArrayRef {
  readonly _ref: "f32"
  /** Omitted for arena arrays: the worker uses its handle of the arena memory. */
  readonly buffer: SharedArrayBuffer | undefined
  readonly byteOffset: number
  readonly length: number
}

const isRef = (v: unknown): v is ArrayRef => typeof v === "object" && v !== null && (v as ArrayRef)._ref === "f32"

/**
 * Encodes the top-level Float32Array fields of `args`. Returns the name of the first field that
 * is not in shared memory instead, so the caller can report it.
 *
 * @category transfer
 */
export const encode = (
  args: Readonly<Record<string, unknown>>,
  inArena: (a: Float32Array) => boolean
): { readonly encoded: Record<string, unknown> } | { readonly notShared: string } => {
  const encoded: Record<string, unknown> = {}
  for (const [field, value] of Object.entries(args)) {
    if (value instanceof Float32Array) {
      const ref = toRef(value, inArena)
      if (ref === undefined) return { notShared: field }
      encoded[field] = ref
    } else if (Array.isArray(value) && value.length > 0 && value.every((v) => v instanceof Float32Array)) {
      const refs: Array<ArrayRef> = []
      for (const [i, v] of (value as Array<Float32Array>).entries()) {
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

const toRef = (a: Float32Array, inArena: (a: Float32Array) => boolean): ArrayRef | undefined => {
  if (inArena(a)) return { _ref: "f32", buffer: undefined, byteOffset: a.byteOffset, length: a.length }
  if (!(a.buffer instanceof SharedArrayBuffer)) return undefined
  return { _ref: "f32", buffer: a.buffer, byteOffset: a.byteOffset, length: a.length }
}

/** Rebuilds the Float32Array views of encoded arguments in this thread. @category transfer */
export const decode = (encoded: Readonly<Record<string, unknown>>, arena: WebAssembly.Memory | undefined): Record<string, unknown> => {
  const view = (r: ArrayRef): Float32Array => {
    const buffer = r.buffer ?? arena?.buffer
    if (buffer === undefined) throw new Error("an arena array was sent to a worker that has no arena")
    return new Float32Array(buffer, r.byteOffset, r.length)
  }
  const args: Record<string, unknown> = {}
  for (const [field, value] of Object.entries(encoded)) {
    if (isRef(value)) args[field] = view(value)
    else if (Array.isArray(value) && value.length > 0 && value.every(isRef)) args[field] = value.map(view)
    else args[field] = value
  }
  return args
}
