// The order test files start in. The example pipelines (examples/*) are the longest files — each
// trains models on MNIST for tens of seconds — and among the smallest, so vitest, which starts
// files it has no earlier duration for largest first, started them last, where they ran alone
// after everything else. Started first, they run beside the many short files. The kill-9 soak
// (a minute of killed and resumed runs) is one of them.
import * as path from "node:path"
import { BaseSequencer, type TestSpecification } from "vitest/node"

const LONG_FILES = ["KillSoak.test.ts"]

const isLong = (spec: TestSpecification): boolean =>
  spec.project.name === "examples" || spec.moduleId.includes(`${path.sep}examples${path.sep}`) || LONG_FILES.includes(path.basename(spec.moduleId))

export class LongFilesFirst extends BaseSequencer {
  override async sort(files: Array<TestSpecification>): Promise<Array<TestSpecification>> {
    const sorted = await super.sort(files)
    return [...sorted.filter(isLong), ...sorted.filter((spec) => !isLong(spec))]
  }
}
