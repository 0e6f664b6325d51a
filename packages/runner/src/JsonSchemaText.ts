/**
 * Short text for a JSON Schema fragment, as a user writes the value in YAML: its type
 * (`integer`, `safetensors | tfjs`, `{ type: adam | adamw, lr, betas? }`, `number[]`), its range
 * (`> 0`, `0 ≤ x < 1`) and its allowed values. Pure; what `crucible kinds` shows for a param.
 *
 * @since 0.1.0
 */
import type { JsonSchema } from "effect"

type Schema = JsonSchema.JsonSchema
type Definitions = Readonly<Record<string, Schema>>

/** A JSON value a param may be: what `enum`/`const` list. */
export type Literal = string | number | boolean | null

/**
 * The type of `schema` as a user writes it. Objects show their keys (`?` when optional) and the
 * value of a key that is a literal (the `type: adam` of a tagged union), not the types of the
 * other values: enough to write the value, short enough for a table.
 *
 * @category formatting
 */
export const typeOf = (schema: Schema, definitions: Definitions = {}): string => render(schema, definitions, new Set())

/** The range of a number, the length of a list, as text; undefined when unconstrained. @category formatting */
export const rangeOf = (schema: Schema): string | undefined => {
  const lower = bound(schema.exclusiveMinimum, "<") ?? bound(schema.minimum, "≤")
  const upper = bound(schema.exclusiveMaximum, "<") ?? bound(schema.maximum, "≤")
  const number = lower !== undefined && upper !== undefined
    ? `${lower.value} ${lower.op} x ${upper.op} ${upper.value}`
    : lower !== undefined ? `${lower.op === "<" ? ">" : "≥"} ${lower.value}` : upper !== undefined ? `${upper.op} ${upper.value}` : undefined
  const items = count(schema.minItems, schema.maxItems, "items")
  const length = count(schema.minLength, schema.maxLength, "characters")
  const parts = [number, items, length, typeof schema.pattern === "string" ? `matches ${schema.pattern}` : undefined].filter((p) => p !== undefined)
  return parts.length === 0 ? undefined : parts.join(", ")
}

/** The values `schema` allows when it is a set of literals (an enum, or a union of constants). @category formatting */
export const allowedOf = (schema: Schema, definitions: Definitions = {}): ReadonlyArray<Literal> | undefined => {
  const s = resolve(schema, definitions)
  if (Array.isArray(s.enum)) return s.enum as ReadonlyArray<Literal>
  if ("const" in s) return [s.const as Literal]
  const members = alternatives(s)
  if (members === undefined) return undefined
  const lists = members.map((m) => allowedOf(m, definitions))
  return lists.every((l) => l !== undefined) ? [...new Set(lists.flat())] : undefined
}

// ---------------------------------------------------------------------------------------------

const render = (schema: Schema, definitions: Definitions, seen: ReadonlySet<string>): string => {
  const ref = refName(schema)
  if (ref !== undefined) {
    const target = definitions[ref]
    // A definition that refers to itself is shown by name where it recurs.
    return target === undefined || seen.has(ref) ? ref : render(target, definitions, new Set([...seen, ref]))
  }
  const allowed = literalsOf(schema)
  if (allowed !== undefined) return allowed.map(literalText).join(" | ")
  const members = alternatives(schema)
  if (members !== undefined) return [...new Set(members.map((m) => render(m, definitions, seen)))].join(" | ")
  const type = schema.type
  if (Array.isArray(type)) return type.join(" | ")
  switch (type) {
    case "array": return arrayText(schema, definitions, seen)
    case "object": return objectText(schema, definitions, seen)
    case "string": case "number": case "integer": case "boolean": case "null": return type
    default: return "any"
  }
}

const arrayText = (schema: Schema, definitions: Definitions, seen: ReadonlySet<string>): string => {
  const items = schema.items
  const prefix = Array.isArray(schema.prefixItems) ? (schema.prefixItems as ReadonlyArray<Schema>) : []
  if (isSchema(items)) {
    const item = render(items, definitions, seen)
    return `${item.includes(" | ") ? `(${item})` : item}[]`
  }
  return prefix.length > 0 ? `[${prefix.map((p) => render(p, definitions, seen)).join(", ")}]` : "any[]"
}

const objectText = (schema: Schema, definitions: Definitions, seen: ReadonlySet<string>): string => {
  const properties = isSchema(schema.properties) ? (schema.properties as Readonly<Record<string, Schema>>) : {}
  const required = new Set(Array.isArray(schema.required) ? (schema.required as ReadonlyArray<string>) : [])
  const keys = Object.entries(properties).map(([key, value]) => {
    const literal = literalsOf(resolve(value, definitions))
    return `${key}${required.has(key) ? "" : "?"}${literal === undefined ? "" : `: ${literal.map(literalText).join(" | ")}`}`
  })
  if (keys.length > 0) return `{ ${keys.join(", ")} }`
  const values = schema.additionalProperties
  return isSchema(values) && Object.keys(values).length > 0 ? `{ <key>: ${render(values, definitions, seen)} }` : "object"
}

const literalsOf = (schema: Schema): ReadonlyArray<Literal> | undefined =>
  Array.isArray(schema.enum) ? (schema.enum as ReadonlyArray<Literal>) : "const" in schema ? [schema.const as Literal] : undefined

const alternatives = (schema: Schema): ReadonlyArray<Schema> | undefined => {
  const members = schema.anyOf ?? schema.oneOf
  return Array.isArray(members) ? (members as ReadonlyArray<Schema>) : undefined
}

const resolve = (schema: Schema, definitions: Definitions): Schema => {
  const ref = refName(schema)
  return ref === undefined ? schema : (definitions[ref] ?? schema)
}

const refName = (schema: Schema): string | undefined =>
  typeof schema.$ref === "string" && schema.$ref.startsWith("#/$defs/") ? decodeURIComponent(schema.$ref.slice("#/$defs/".length)) : undefined

// YAML writes strings bare; quote the ones YAML would read as something else.
const literalText = (value: Literal): string =>
  typeof value === "string" ? (/^[A-Za-z_][\w./-]*$/.test(value) && !/^(true|false|null|yes|no|on|off)$/i.test(value) ? value : JSON.stringify(value)) : String(value)

const isSchema = (value: unknown): value is Schema => typeof value === "object" && value !== null && !Array.isArray(value)

// Effect bounds every integer by ±2⁵³−1 (the safe integers): no limit a user would write.
const bound = (value: unknown, op: "<" | "≤"): { readonly value: number; readonly op: "<" | "≤" } | undefined =>
  typeof value === "number" && Math.abs(value) < Number.MAX_SAFE_INTEGER ? { value, op } : undefined

const count = (min: unknown, max: unknown, unit: string): string | undefined => {
  const lo = typeof min === "number" && min > 0 ? min : undefined
  const hi = typeof max === "number" ? max : undefined
  if (lo !== undefined && hi !== undefined) return lo === hi ? `${lo} ${unit}` : `${lo}–${hi} ${unit}`
  if (lo !== undefined) return lo === 1 && unit === "items" ? "not empty" : `≥ ${lo} ${unit}`
  return hi === undefined ? undefined : `≤ ${hi} ${unit}`
}
