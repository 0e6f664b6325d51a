/**
 * Alignment: put model B's hidden units into model A's order so the two can be merged
 * (Git Re-Basin). See README.md in this folder for conventions and design.
 *
 * @since 0.1.0
 */
export * as ActivationMatching from "./ActivationMatching.ts"
export * as AlignError from "./AlignError.ts"
export * as Lap from "./Lap.ts"
export * as Params from "./Params.ts"
export * as PermutationSpec from "./PermutationSpec.ts"
export * as Permute from "./Permute.ts"
export * as WeightMatching from "./WeightMatching.ts"
