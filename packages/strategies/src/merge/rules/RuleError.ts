/**
 * The errors of parameter rules: a rule that cannot be understood, a per-model list of the wrong
 * length, and (in strict mode) a tensor that no rule covers. Each names the parameter.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/** A parameter's rule is malformed (bad glob or regex, empty gradient, wrong shape). @category errors */
export class InvalidRule extends Schema.TaggedError<InvalidRule>()("InvalidRule", {
  parameter: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `parameter "${this.parameter}": ${this.detail}`
  }
}

/** A per-model list does not have one value per model. @category errors */
export class PerModelMismatch extends Schema.TaggedError<PerModelMismatch>()("PerModelMismatch", {
  parameter: Schema.String,
  expected: Schema.Number,
  got: Schema.Number
}) {
  override get message() {
    const fix = "give one value per model, or a single value for all"
    return `parameter "${this.parameter}": the per-model list has ${this.got} values for ${this.expected} models (${fix})`
  }
}

/** Strict mode: no filter of the parameter's rule list matches a tensor. @category errors */
export class NoRuleMatches extends Schema.TaggedError<NoRuleMatches>()("NoRuleMatches", {
  parameter: Schema.String,
  tensor: Schema.String
}) {
  override get message() {
    const fix = `add a catch-all { filter: "*", value: … } as the last rule, or let the stage copy it from the base`
    return `parameter "${this.parameter}": no filter matches tensor "${this.tensor}" (${fix})`
  }
}

/** Any error of parameter rules. @category errors */
export type RuleError = InvalidRule | PerModelMismatch | NoRuleMatches
