/**
 * The catalog of stage kinds — what `crucible kinds` lists: each kind's description, inputs,
 * params (type as written in YAML, default, range or allowed values, required or not) and
 * output port, generated from the kinds themselves (their Effect Schemas and ports), so that it
 * cannot disagree with the validator. Pure: the command decides where the text goes.
 *
 * @since 0.1.0
 */
import type { Port, Registry, Stage } from "@crucible/core"
import type { JsonSchema } from "effect"
import * as JsonSchemaText from "./JsonSchemaText.ts"
import * as ParamsSchema from "./ParamsSchema.ts"

/** An input: a stage id in `with:` (a list of ids for `many`). @category models */
export interface InputInfo {
  readonly name: string
  /** The port the referenced stage must output (`model`, `metrics`, `files`). */
  readonly port: string
  readonly arity: "one" | "many" | "optional"
  /** For `many`: the least number of ids. */
  readonly min: number
  readonly required: boolean
  readonly description: string
}

/** A parameter. @category models */
export interface ParamInfo {
  readonly name: string
  /** The type as written in YAML, e.g. `integer`, `safetensors | tfjs`, `{ type: adam | adamw, lr, eps? }`. */
  readonly type: string
  readonly required: boolean
  /** The value used when the param is left out, when the kind's Schema declares one. */
  readonly default?: unknown
  /** Bounds, e.g. `> 0`, `0 ≤ x < 1`, `≥ 2 items`. */
  readonly range?: string
  /** The values allowed, when the param is one of a set. */
  readonly allowed?: ReadonlyArray<JsonSchemaText.Literal>
  readonly description?: string
}

/** One stage kind. @category models */
export interface KindInfo {
  readonly kind: string
  readonly version: number
  readonly description: string
  readonly reference?: string
  readonly inputs: ReadonlyArray<InputInfo>
  readonly params: ReadonlyArray<ParamInfo>
  readonly output: { readonly port: string; readonly description: string }
}

/** The catalog of every kind in `registry`, in the registry's order. @category constructors */
export const make = (registry: Registry.Registry): ReadonlyArray<KindInfo> => {
  const kinds = [...registry.kinds.values()]
  const { schemas, definitions } = ParamsSchema.make(kinds)
  return kinds.map((kind, i) => info(kind, schemas[i] ?? {}, definitions))
}

const info = (kind: Stage.AnyStageKind, params: JsonSchema.JsonSchema, definitions: Readonly<Record<string, JsonSchema.JsonSchema>>): KindInfo => ({
  kind: kind.kind,
  version: kind.version,
  description: kind.description,
  ...(kind.reference === undefined ? {} : { reference: kind.reference }),
  inputs: Object.entries(kind.inputs as Readonly<Record<string, Port.Input>>).map(([name, input]) => ({
    name,
    port: input.port.name,
    arity: input.arity,
    min: input.min,
    required: isRequired(input),
    description: input.description
  })),
  params: fieldsOf(params).map(({ name, schema, required }) => {
    const range = JsonSchemaText.rangeOf(schema)
    const allowed = JsonSchemaText.allowedOf(schema, definitions)
    return {
      name,
      type: JsonSchemaText.typeOf(schema, definitions),
      required,
      ...("default" in schema ? { default: schema.default } : {}),
      ...(range === undefined ? {} : { range }),
      ...(allowed === undefined ? {} : { allowed }),
      ...(typeof schema.description === "string" ? { description: schema.description } : {})
    }
  }),
  output: { port: kind.output.name, description: kind.output.description }
})

/** Whether the validator reports a missing input (`one`, or `many` with a least number). */
export const isRequired = (input: Port.Input): boolean => input.arity === "one" || (input.arity === "many" && input.min > 0)

/**
 * The fields of a params object schema. A kind whose params are a union of objects lists every
 * field of every member, required only when every member requires it.
 */
const fieldsOf = (schema: JsonSchema.JsonSchema): ReadonlyArray<{ readonly name: string; readonly schema: JsonSchema.JsonSchema; readonly required: boolean }> => {
  const members = (schema.anyOf ?? schema.oneOf ?? [schema]) as ReadonlyArray<JsonSchema.JsonSchema>
  const fields = new Map<string, { name: string; schema: JsonSchema.JsonSchema; required: boolean }>()
  for (const member of members) {
    const required = new Set((member.required ?? []) as ReadonlyArray<string>)
    for (const [name, s] of Object.entries((member.properties ?? {}) as Readonly<Record<string, JsonSchema.JsonSchema>>)) {
      const known = fields.get(name)
      fields.set(name, { name, schema: known?.schema ?? s, required: (known?.required ?? true) && required.has(name) })
    }
  }
  // A field that some member lacks is not required.
  for (const field of fields.values()) if (!members.every((m) => hasField(m, field.name))) field.required = false
  return [...fields.values()]
}

const hasField = (member: JsonSchema.JsonSchema, key: string): boolean => key in ((member.properties ?? {}) as object)

// ---------------------------------------------------------------------------------------------

/** The catalog as text: per kind a header line, then its inputs, output and params, one per line. @category formatting */
export const format = (catalog: ReadonlyArray<KindInfo>): string => catalog.map(formatKind).join("\n\n")

const formatKind = (k: KindInfo): string => [
  `${k.kind} (v${k.version}) — ${k.description}`,
  ...(k.reference === undefined ? [] : [`  reference: ${k.reference}`]),
  ...section("inputs", k.inputs.map((i) => [`${i.name}${i.required ? "" : "?"}`, inputText(i), i.description])),
  `  output: ${k.output.port}`,
  ...section("params", k.params.map((p) => [`${p.name}${p.required ? "" : "?"}`, paramText(p), p.description ?? ""]))
].join("\n")

/** `  title:` and one aligned line per row (name, what, description); `  title: —` when empty. */
const section = (title: string, rows: ReadonlyArray<readonly [string, string, string]>): ReadonlyArray<string> => {
  if (rows.length === 0) return [`  ${title}: —`]
  const width = Math.max(...rows.map(([name]) => name.length))
  return [`  ${title}:`, ...rows.map(([name, what, description]) => `    ${name.padEnd(width)}  ${what}${description === "" ? "" : ` — ${description}`}`)]
}

const inputText = (i: InputInfo): string =>
  i.arity === "many" ? `[${i.port}, …]${i.min > 0 ? ` (≥ ${i.min})` : ""}` : i.port

const paramText = (p: ParamInfo): string =>
  `${p.type}${p.range === undefined ? "" : ` (${p.range})`}${p.default === undefined ? "" : `, default ${typeof p.default === "string" ? p.default : JSON.stringify(p.default)}`}`
