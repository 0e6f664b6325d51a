/**
 * The merge stage kinds by name: the one list that `Builtin` registers and that stages choosing a
 * merge method by name (`progressive/iterative`'s `method:`) look up.
 *
 * @since 0.1.0
 */
import { ArceeFusion } from "./ArceeFusion.ts"
import { Karcher } from "./Karcher.ts"
import { Linear } from "./Linear.ts"
import { ModelStock } from "./ModelStock.ts"
import { NearSwap } from "./NearSwap.ts"
import { NuSlerp } from "./NuSlerp.ts"
import { Passthrough } from "./Passthrough.ts"
import { Sce } from "./Sce.ts"
import { Multislerp, Slerp } from "./Spherical.ts"
import { FisherMerge, RegMean } from "./Statistics.ts"
import { Breadcrumbs, BreadcrumbsTies, DareLinear, DareTies, Della, DellaLinear, TaskArithmetic, Ties } from "./TaskArithmetic.ts"

/** @category registry */
export const MergeKinds = {
  "merge/linear": Linear,
  "merge/task-arithmetic": TaskArithmetic,
  "merge/ties": Ties,
  "merge/dare-linear": DareLinear,
  "merge/dare-ties": DareTies,
  "merge/breadcrumbs": Breadcrumbs,
  "merge/breadcrumbs-ties": BreadcrumbsTies,
  "merge/della": Della,
  "merge/della-linear": DellaLinear,
  "merge/slerp": Slerp,
  "merge/multislerp": Multislerp,
  "merge/nuslerp": NuSlerp,
  "merge/karcher": Karcher,
  "merge/sce": Sce,
  "merge/nearswap": NearSwap,
  "merge/arcee-fusion": ArceeFusion,
  "merge/model-stock": ModelStock,
  "merge/passthrough": Passthrough,
  "merge/fisher": FisherMerge,
  "merge/regmean": RegMean
} as const

/** The names of the merge kinds. */
export type MergeKind = keyof typeof MergeKinds
