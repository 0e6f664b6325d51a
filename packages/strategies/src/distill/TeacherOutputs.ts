/**
 * A teacher's logits over the distillation data, computed once per (teacher, data,
 * augmentation) and reused: by every epoch of a distillation, and by every distillation with
 * the same teacher and data (e.g. students of several seeds) through the run's memo (`RunCache`)
 * and a file in the runs directory's cache, named by a digest of the teacher's weights, the data and the augmentation.
 *
 * Without augmentation the rows follow the dataset (look them up by sample index). With shifts,
 * the images a student sees differ every epoch, so the teacher sees the same shifted images:
 * rows `[e·N, (e+1)·N)` hold epoch `e`'s samples in batch order (`Batches.batches` with the same
 * options reproduces them).
 *
 * @since 0.1.0
 */
import { AtomicFile, RunCache } from "@crucible/core"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Batches from "../data/Batches.ts"
import type { Dataset } from "../data/Dataset.ts"
import * as Classifier from "../ensemble/Classifier.ts"

/** The student's batches when they are augmented (the teacher must see the same images). @category models */
export interface Augmented {
  readonly shift: number
  readonly seed: number
  readonly epochs: number
  readonly batchSize: number
  readonly shuffle: boolean
  readonly dropLast: boolean
}

/** A digest identifying the teacher's function: architectures, fusion and every parameter value. */
export const teacherDigest = (teacher: Classifier.Classifier): string => {
  const hash = createHash("sha256")
  hash.update(JSON.stringify(teacher.spec ?? null))
  for (const m of teacher.members) {
    hash.update(JSON.stringify(m.network.arch))
    for (const [name, t] of m.params) {
      hash.update(name)
      hash.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength))
    }
  }
  return hash.digest("hex")
}

const dataDigest = (data: Dataset): string =>
  createHash("sha256")
    .update(JSON.stringify({ shape: data.shape, count: data.count }))
    .update(new Uint8Array(data.x.buffer, data.x.byteOffset, data.x.byteLength))
    .update(new Uint8Array(data.y.buffer, data.y.byteOffset, data.y.byteLength))
    .digest("hex")

/** The cache key of a teacher's outputs. */
export const key = (teacher: Classifier.Classifier, data: Dataset, augmented?: Augmented): string =>
  createHash("sha256").update(teacherDigest(teacher)).update(dataDigest(data)).update(JSON.stringify(augmented ?? null)).digest("hex").slice(0, 32)

/** Computes the teacher's logits (see the module doc for the row order). */
export const compute = (teacher: Classifier.Classifier, data: Dataset, augmented?: Augmented) =>
  Effect.scoped(
    Effect.gen(function* () {
      if (augmented === undefined || augmented.shift === 0) return yield* Classifier.logits(teacher, data)
      yield* Classifier.check(teacher, data)
      const run = yield* Classifier.open(teacher)
      const k = teacher.classes
      const out = new Float32Array(augmented.epochs * data.count * k)
      for (let epoch = 0; epoch < augmented.epochs; epoch++) {
        let row = epoch * data.count
        for (const batch of Batches.batches(data, { ...augmented, epoch })) {
          out.set(yield* run(batch.x, batch.indices.length), row * k)
          row += batch.indices.length
        }
        yield* Effect.yieldNow
      }
      return out
    })
  )

/**
 * The teacher's logits from the run's memo (`RunCache`) or the cache folder `dir`, computing and
 * storing them the first time. `reused` is false only for the caller that computed them.
 */
export const cached = Effect.fn("TeacherOutputs.cached")(function* (teacher: Classifier.Classifier, data: Dataset, dir: string, augmented?: Augmented) {
  const id = key(teacher, data, augmented?.shift === 0 ? undefined : augmented)
  const file = path.join(dir, `${id}.f32`)
  const expected = (augmented === undefined || augmented.shift === 0 ? 1 : augmented.epochs) * data.count * teacher.classes
  let computed = false
  const logits = yield* RunCache.memo(`crucible/teacher-outputs:${id}`, Effect.gen(function* () {
    if (fs.existsSync(file) && fs.statSync(file).size === expected * 4) {
      const bytes = fs.readFileSync(file)
      return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength))
    }
    const logits = yield* compute(teacher, data, augmented)
    fs.mkdirSync(dir, { recursive: true })
    yield* AtomicFile.writeWhole(file, new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength))
    computed = true
    return logits
  }), { bytes: (l) => l.byteLength })
  return { logits, reused: !computed, key: id }
})
