import { describe, expect, it } from "vitest"
import { Port, Stage } from "@crucible/core"
import { Effect, Schema } from "effect"
import * as ParamsSchema from "../src/ParamsSchema.ts"

const kindWith = (params: Schema.Top) =>
  Stage.define({ kind: "t", version: 1, description: "", params, inputs: {}, output: Port.ModelPort, run: () => Effect.die("unused") })

describe("params as JSON Schema", () => {
  it("an optional key may be absent but not null; a key that takes null keeps it", () => {
    const { schemas } = ParamsSchema.make([kindWith(Schema.Struct({
      a: Schema.optional(Schema.Int.annotate({ default: 3, description: "a" })),
      b: Schema.optional(Schema.NullOr(Schema.String)),
      c: Schema.Struct({ d: Schema.optional(Schema.Boolean) })
    }))])
    expect(schemas[0]).toEqual({
      type: "object",
      properties: {
        a: { type: "integer", minimum: -9007199254740991, maximum: 9007199254740991, default: 3, description: "a" },
        b: { anyOf: [{ type: "string" }, { type: "null" }] },
        c: { type: "object", properties: { d: { type: "boolean" } }, additionalProperties: false }
      },
      required: ["c"],
      additionalProperties: false
    })
  })

  it("shares named schemas as definitions, and writes a non-empty list without a redundant tuple", () => {
    const Point = Schema.Struct({ x: Schema.Finite }).annotate({ identifier: "Point" })
    const { schemas, definitions } = ParamsSchema.make([kindWith(Schema.Struct({ p: Point })), kindWith(Schema.Struct({ q: Schema.NonEmptyArray(Point) }))])
    expect(Object.keys(definitions)).toEqual(["Point"])
    expect((schemas[1] as any).properties.q).toEqual({ type: "array", minItems: 1, items: { $ref: "#/$defs/Point" } })
  })
})
