import { describe, expect, it } from "vitest"
import * as JsonSchemaText from "../src/JsonSchemaText.ts"

describe("JSON Schema as text", () => {
  it("writes types as YAML users write values", () => {
    expect(JsonSchemaText.typeOf({ type: "array", prefixItems: [{ type: "number" }, { type: "string" }] })).toBe("[number, string]")
    expect(JsonSchemaText.typeOf({ type: "array", items: { anyOf: [{ type: "number" }, { type: "string" }] } })).toBe("(number | string)[]")
    expect(JsonSchemaText.typeOf({ type: "object", additionalProperties: { type: "string" } })).toBe("{ <key>: string }")
    expect(JsonSchemaText.typeOf({ type: "object" })).toBe("object")
    expect(JsonSchemaText.typeOf({})).toBe("any")
    // Strings YAML would read as something else are quoted.
    expect(JsonSchemaText.typeOf({ enum: ["auto", "true", "2GB", "a b"] })).toBe('auto | "true" | "2GB" | "a b"')
  })

  it("shows a definition inline, and by name where it recurs", () => {
    const definitions = { Tree: { type: "object", properties: { children: { type: "array", items: { $ref: "#/$defs/Tree" } } }, required: ["children"] } }
    expect(JsonSchemaText.typeOf({ $ref: "#/$defs/Tree" }, definitions)).toBe("{ children }")
    expect(JsonSchemaText.typeOf({ type: "array", items: { $ref: "#/$defs/Tree" } }, definitions)).toBe("{ children }[]")
  })

  it("writes ranges, leaving out the safe-integer bounds every integer has", () => {
    expect(JsonSchemaText.rangeOf({ type: "integer", minimum: -9007199254740991, maximum: 9007199254740991 })).toBeUndefined()
    expect(JsonSchemaText.rangeOf({ type: "integer", exclusiveMinimum: 0, maximum: 9007199254740991 })).toBe("> 0")
    expect(JsonSchemaText.rangeOf({ type: "number", minimum: 0, exclusiveMaximum: 1 })).toBe("0 ≤ x < 1")
    expect(JsonSchemaText.rangeOf({ type: "number", maximum: 4 })).toBe("≤ 4")
    expect(JsonSchemaText.rangeOf({ type: "array", minItems: 2, maxItems: 2 })).toBe("2 items")
    expect(JsonSchemaText.rangeOf({ type: "array", minItems: 1 })).toBe("not empty")
  })

  it("lists the allowed values of enums and unions of constants", () => {
    expect(JsonSchemaText.allowedOf({ anyOf: [{ const: "a" }, { enum: ["b", "c"] }] })).toEqual(["a", "b", "c"])
    expect(JsonSchemaText.allowedOf({ anyOf: [{ const: "a" }, { type: "number" }] })).toBeUndefined()
  })
})
