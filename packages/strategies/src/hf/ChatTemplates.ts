/**
 * The chat templates mergekit ships (`mergekit/_data/chat_templates/*.jinja`, commit a6e4028), by the
 * name its `chat_template:` key takes, and the rule it applies to that key: a shipped name gives its
 * text; otherwise the value is Jinja text itself, and text shorter than 20 characters or without a
 * `{` is refused (a misspelt name, not a template). mergekit's `auto` (the most common template of
 * the input models) is resolved by `tokenizer/align`, which reads the inputs' tokenizers.
 *
 * @since 0.1.0
 */
import { Result, Schema } from "effect"

/** The templates by name, as mergekit ships them (byte for byte). @category data */
export const named: Readonly<Record<string, string>> = {
  alpaca: "{{ (messages|selectattr('role', 'equalto', 'system')|list|last).content|trim if (messages|selectattr('role', 'equalto', 'system')|list) else '' }}\n\n{% for message in messages %}\n{% if message['role'] == 'user' %}\n### Instruction:\n{{ message['content']|trim -}}\n{% if not loop.last %}\n\n\n{% endif %}\n{% elif message['role'] == 'assistant' %}\n### Response:\n{{ message['content']|trim -}}\n{% if not loop.last %}\n\n\n{% endif %}\n{% elif message['role'] == 'user_context' %}\n### Input:\n{{ message['content']|trim -}}\n{% if not loop.last %}\n\n\n{% endif %}\n{% endif %}\n{% endfor %}\n{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}\n### Response:\n{% endif %}\n",
  chatml: "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}\n{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}\n",
  exaone: "{% for message in messages %}\n    {% if loop.first and message['role'] != 'system' %}\n        {{ '[|system|][|endofturn|]\\n' }}\n    {% endif %}\n    {{ '[|' + message['role'] + '|]' + message['content'] }}\n    {% if message['role'] == 'user' %}\n        {{ '\\n' }}\n    {% else %}\n        {{ '[|endofturn|]\\n' }}\n    {% endif %}\n{% endfor %}\n{% if add_generation_prompt %}\n    {{ '[|assistant|]' }}\n{% endif %}\n",
  llama3: "{% set loop_messages = messages %}\n{% for message in loop_messages %}\n{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}\n{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}\n{{ content }}\n{% endfor %}\n{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}\n",
  mistral: "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content'] %}\n    {%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif %}\n\n{{- bos_token }}\n{%- for message in loop_messages %}\n    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}\n    {%- endif %}\n    {%- if message['role'] == 'user' %}\n        {%- if loop.first and system_message is defined %}\n            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}\n        {%- else %}\n            {{- ' [INST] ' + message['content'] + ' [/INST]' }}\n        {%- endif %}\n    {%- elif message['role'] == 'assistant' %}\n        {{- ' ' + message['content'] + eos_token}}\n    {%- else %}\n        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}\n    {%- endif %}\n{%- endfor %}\n"
}

/** A `chat_template` value that is neither a shipped name nor Jinja text. @category errors */
export class ChatTemplateError extends Schema.TaggedError<ChatTemplateError>()("ChatTemplateError", {
  value: Schema.String
}) {
  override get message() {
    return `chat_template ${JSON.stringify(this.value)} is not a template: use one of ${Object.keys(named).join(", ")}, "auto", or Jinja text`
  }
}

/**
 * The Jinja text for mergekit's `chat_template` value: a shipped name's text, or the value itself
 * when it reads as a template. `"auto"` is not resolved here (it needs the input tokenizers).
 *
 * @category constructors
 */
export const resolve = (value: string): Result.Result<string, ChatTemplateError> => {
  const shipped = named[value]
  if (shipped !== undefined) return Result.succeed(shipped)
  // mergekit's own test for "this is not a template"
  if (value.length < 20 || !value.includes("{")) return Result.fail(new ChatTemplateError({ value }))
  return Result.succeed(value)
}

/**
 * mergekit's `auto`: the template most of `templates` share (trimmed; the first of equals wins,
 * as Python's `Counter.most_common`), undefined when none has one.
 *
 * @category constructors
 */
export const plurality = (templates: ReadonlyArray<string | undefined>): string | undefined => {
  const counts = new Map<string, number>()
  for (const t of templates) if (t !== undefined && t.trim() !== "") counts.set(t.trim(), (counts.get(t.trim()) ?? 0) + 1)
  let best: string | undefined
  for (const [t, n] of counts) if (best === undefined || n > counts.get(best)!) best = t
  return best
}
