import { Schema } from "effect"

/** A kind's params as its Schema decodes them (defaults filled in), for tests that call `run` directly. */
export const decodeParams = <S extends Schema.Top>(kind: { readonly params: S }, params: S["Encoded"]): S["Type"] =>
  Schema.decodeUnknownSync(kind.params as unknown as Schema.Codec<S["Type"], unknown>)(params)
