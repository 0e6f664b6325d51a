/**
 * The Python values a pickle can describe, as plain data: containers are small classes so a
 * tuple, a list and a dict stay distinguishable; everything else is a JavaScript primitive
 * (`None` → null, int → number or bigint beyond 2^53, bytes → Uint8Array). Nothing here can run
 * code: a "callable" is an allowlisted JavaScript function that builds one of these values.
 *
 * @since 0.1.0
 */

/** A Python tuple. @category models */
export class Tuple {
  readonly items: ReadonlyArray<unknown>
  constructor(items: ReadonlyArray<unknown>) {
    this.items = items
  }
}

/** A Python list (mutable while the pickle is read). @category models */
export class List {
  readonly items: Array<unknown>
  constructor(items: Array<unknown> = []) {
    this.items = items
  }
}

/** A Python set or frozenset. @category models */
export class PySet {
  readonly items: Array<unknown>
  readonly frozen: boolean
  constructor(items: Array<unknown>, frozen: boolean) {
    this.items = items
    this.frozen = frozen
  }
}

/**
 * A Python dict or OrderedDict, in insertion order. Keys are compared by value for primitives
 * and by identity otherwise. `attributes` holds what BUILD set on it (an OrderedDict's
 * `_metadata`, as `nn.Module.state_dict()` records module versions there).
 * @category models
 */
export class Dict {
  readonly entries = new Map<unknown, unknown>()
  readonly ordered: boolean
  attributes: Dict | undefined = undefined
  constructor(ordered = false) {
    this.ordered = ordered
  }
}

/** The outcome of a callable: a value, or why it refused (a sentence for an error message). */
export type CallResult = { readonly value: unknown } | { readonly refused: string }

/**
 * An allowlisted global: a name and, if it may be called by REDUCE/NEWOBJ, the pure function
 * that builds its value. Globals that are only data (a dtype, a storage class) refuse calls.
 * @category models
 */
export interface Global {
  readonly _tag: "Global"
  readonly qualifiedName: string
  readonly call: (args: ReadonlyArray<unknown>) => CallResult
  /** Data attached by the allowlist (a storage class's dtype). */
  readonly data?: unknown
}

/** Builds a global. @category constructors */
export const global = (qualifiedName: string, call?: (args: ReadonlyArray<unknown>) => CallResult, data?: unknown): Global => ({
  _tag: "Global",
  qualifiedName,
  call: call ?? (() => ({ refused: `${qualifiedName} cannot be called` })),
  ...(data === undefined ? {} : { data })
})

/** @category guards */
export const isGlobal = (u: unknown): u is Global => typeof u === "object" && u !== null && (u as Global)._tag === "Global"

/** An object that accepts BUILD's state (`__setstate__`), e.g. a tensor subclass's. @category models */
export interface Buildable {
  readonly setState: (state: unknown) => CallResult
}

/** @category guards */
export const isBuildable = (u: unknown): u is Buildable => typeof u === "object" && u !== null && typeof (u as Buildable).setState === "function"

/**
 * Bytes as ISO-8859-1 text, one code point per byte. (TextDecoder's "latin1" is really
 * windows-1252, which maps 0x80–0x9f elsewhere.)
 */
export const latin1 = (bytes: Uint8Array): string => {
  let out = ""
  for (let i = 0; i < bytes.byteLength; i += 8192) out += String.fromCharCode(...bytes.subarray(i, i + 8192))
  return out
}

/** An integer as a number when it is one exactly, else undefined. */
export const asInteger = (u: unknown): number | undefined =>
  typeof u === "number" && Number.isSafeInteger(u) ? u : typeof u === "bigint" && u >= BigInt(Number.MIN_SAFE_INTEGER) && u <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(u) : typeof u === "boolean" ? Number(u) : undefined

/** The items of a tuple or list, else undefined. */
export const asSequence = (u: unknown): ReadonlyArray<unknown> | undefined => (u instanceof Tuple || u instanceof List ? u.items : undefined)

/** A short description of a value's Python type, for messages. */
export const typeName = (u: unknown): string => {
  if (u === null) return "None"
  if (u === undefined) return "nothing"
  if (u instanceof Tuple) return "tuple"
  if (u instanceof List) return "list"
  if (u instanceof Dict) return u.ordered ? "OrderedDict" : "dict"
  if (u instanceof PySet) return u.frozen ? "frozenset" : "set"
  if (u instanceof Uint8Array) return "bytes"
  if (isGlobal(u)) return u.qualifiedName
  switch (typeof u) {
    case "boolean": return "bool"
    case "number": return Number.isInteger(u) ? "int" : "float"
    case "bigint": return "int"
    case "string": return "str"
    default: return (u as { constructor?: { name?: string } }).constructor?.name ?? "object"
  }
}
