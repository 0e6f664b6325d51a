/**
 * The `README.md` model card of an output folder, as the Hugging Face Hub reads it: YAML front
 * matter (`base_model`, `tags: [merge, crucible]`, `library_name: transformers`) and a body naming
 * the method(s), the models and the pipeline (and stage) that made it.
 *
 * `base_model` lists every model the weights come from, the base first, as mergekit's cards do
 * (the Hub shows a merge's parents from that list); each is named by `HubId.of` (a Hub id for a
 * Hugging Face cache snapshot, else the folder's name).
 *
 * @since 0.1.0
 */
import type { Model } from "@crucible/core"
import * as HubId from "./HubId.ts"

/** What a card says. @category models */
export interface Card {
  readonly provenance: Model.Provenance | undefined
  /** The pipeline's name, when known. */
  readonly pipeline: string | undefined
  /** The save stage's id. */
  readonly stage: string
  /** Whether the folder has a `config.json` (a card without one says how to add it). */
  readonly hasConfig: boolean
}

// A YAML scalar that stays a string whatever it holds (`org/name`, `7b:latest`, `yes`).
const yamlString = (text: string): string => JSON.stringify(text)

/** The card's Markdown text. @category formatting */
export const render = (card: Card): string => {
  const p = card.provenance
  const ids = (p?.folders ?? []).map(HubId.of)
  const base = p?.base === undefined ? undefined : HubId.of(p.base)
  const front = [
    "---",
    ...(ids.length === 0 ? [] : ["base_model:", ...ids.map((id) => `- ${yamlString(id)}`)]),
    "library_name: transformers",
    "tags:",
    "- merge",
    "- crucible",
    "---"
  ]
  const methods = (p?.methods ?? []).map((m) => `\`${m}\``).join(", then ")
  const merged = ids.filter((id) => id !== base)
  const madeBy = card.pipeline === undefined ? `stage \`${card.stage}\`` : `pipeline \`${card.pipeline}\` (stage \`${card.stage}\`)`
  const body = [
    `# ${card.pipeline ?? card.stage}`,
    "",
    `This model was made with Crucible by the ${madeBy}.`,
    "",
    "## Merge details",
    "",
    p === undefined || p.methods.length === 0 ? "Method: none (the weights are written as they were read)." : `Method: ${methods}${base === undefined ? "" : `, with \`${base}\` as the base`}.`,
    "",
    ...(merged.length === 0 ? [] : ["Models merged:", "", ...merged.map((id) => `- ${linked(id)}`), ""]),
    ...(card.hasConfig ? [] : [
      "No `config.json` was available (none of the inputs was read from a Hugging Face folder with one, and no",
      "`config_from` was given): this folder holds the weights only. Add the config.json of the architecture to load it",
      "with transformers.",
      ""
    ])
  ]
  return `${[...front, ...body].join("\n").trimEnd()}\n`
}

// A Hub id (`org/name`) links to its page; a local folder's name cannot.
const linked = (id: string): string => (id.includes("/") ? `[${id}](https://huggingface.co/${id})` : `\`${id}\``)
