// The LM stages' params: defaults in the Schemas (so they are part of the key), what they read
// (data, config and tokenizer files), and the provenance a trained model carries for `save`.
import { describe, expect, it } from "vitest"
import { Stage } from "@crucible/core"
import { Schema } from "effect"
import * as path from "node:path"
import { Builtin } from "../../../src/Builtin.ts"
import * as Fields from "../../../src/lm/stages/Fields.ts"
import * as TextSource from "../../../src/text/TextSource.ts"
import { tempDir, writeModelFolder } from "./support.ts"

const decode = (kind: Stage.AnyStageKind, params: unknown) => Schema.decodeUnknownSync(kind.params as Schema.Codec<unknown, unknown>)(params) as Record<string, unknown>
const readsOf = (name: keyof typeof Builtin, params: Record<string, unknown>) => {
  const kind = Builtin[name] as Stage.AnyStageKind
  return Stage.readsOf(kind, decode(kind, params))
}

describe("LM stage params", () => {
  it("omitted params decode to their defaults, equal to the explicit defaults", () => {
    const cases: ReadonlyArray<readonly [keyof typeof Builtin, Record<string, unknown>, Record<string, unknown>]> = [
      ["lm/train", { steps: 10 }, { data: "brown", split: "train", seq_len: 128, batch_size: 16, seed: 0, optimizer: { type: "adamw", lr: 0.001 }, schedule: { type: "constant" }, log_every: 10 }],
      ["lm/distill", { steps: 10 }, { data: "brown", split: "train", temperature: 2, alpha: 0.5, seed: 0 }],
      ["lm/evaluate", {}, { data: "brown", split: "test", by: "group", seq_len: 128, max_blocks: 64, batch_size: 8 }],
      ["lm/generate", { prompts: ["a"] }, { max_new_tokens: 32, temperature: 0, seed: 0 }]
    ]
    for (const [name, required, defaults] of cases) {
      const kind = Builtin[name] as Stage.AnyStageKind
      const omitted = decode(kind, required)
      expect(omitted, name).toMatchObject(defaults)
      expect(decode(kind, { ...required, ...defaults }), name).toEqual(omitted)
    }
    expect(() => decode(Builtin["lm/train"], {})).toThrow(/steps/)
    expect(() => decode(Builtin["lm/distill"], { steps: 1, alpha: 2 })).toThrow()
  })

  it("reads: the text data (Brown with its version and split), config and tokenizer files; nothing for inline configs", () => {
    expect(readsOf("lm/train", { steps: 1, config: "tiny-llama" })).toEqual([{ builtin: TextSource.BROWN_VERSION }, { file: "tiny-llama" }])
    expect(readsOf("lm/train", { steps: 1, config: { model_type: "llama" }, tokenizer: "tok/tokenizer.json", data: { jsonl: "d.jsonl" } })).toEqual([{ file: "d.jsonl" }, { file: "tok/tokenizer.json" }])
    expect(readsOf("lm/distill", { steps: 1, data: { text: "corpus/" } })).toEqual([{ file: "corpus/" }])
    expect(readsOf("lm/evaluate", { config: "c/config.json" })).toEqual([{ builtin: TextSource.BROWN_VERSION }, { file: "c/config.json" }])
    expect(readsOf("lm/generate", { prompts: ["a"] })).toEqual([])
  })

  it("provenance: the config folder as donor, the init's otherwise; tokenizer: overrides the tokenizer folder", () => {
    const dir = tempDir("lm-params")
    const folder = writeModelFolder(path.join(dir, "tiny"))
    const resolve = (p: string) => path.resolve(dir, p)
    expect(Fields.trainedProvenance("lm/train", undefined, { config: "tiny" }, resolve)).toEqual({ folders: [], donor: folder, methods: ["lm/train"] })
    expect(Fields.trainedProvenance("lm/train", undefined, { config: "tiny/config.json" }, resolve)).toEqual({ folders: [], donor: folder, methods: ["lm/train"] })
    expect(Fields.trainedProvenance("lm/train", undefined, { config: { model_type: "llama" } }, resolve)).toBeUndefined()
    const loaded = { tensors: new Map(), metadata: {}, source: "base", files: [], provenance: { folders: ["/hf/base"], donor: "/hf/base", methods: [] } }
    expect(Fields.trainedProvenance("lm/train", loaded, {}, resolve)).toEqual({ folders: ["/hf/base"], donor: "/hf/base", methods: ["lm/train"] })
    const trained = { ...loaded, provenance: { folders: [], donor: folder, methods: ["lm/train"] } }
    expect(Fields.trainedProvenance("lm/distill", trained, { tokenizer: "tiny/tokenizer.json" }, resolve)).toEqual({ folders: [], donor: folder, tokenizer: folder, methods: ["lm/train", "lm/distill"] })
    // A config given with an init replaces the init's donor.
    expect(Fields.trainedProvenance("lm/train", loaded, { config: { model_type: "llama" } }, resolve)).toEqual({ folders: ["/hf/base"], methods: ["lm/train"] })
  })
})
