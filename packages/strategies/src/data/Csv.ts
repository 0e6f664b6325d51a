/**
 * User datasets from CSV: one sample per line, numeric feature columns and one label column.
 *
 * - The label column is named (`label: "species"`, needs a header), indexed (`label: 0`) or, by
 *   default, the last column.
 * - A header row is detected when the first row's feature cells are not all numbers (or set
 *   `header` explicitly).
 * - Labels that are all non-negative integers are class indices (`classes` = max + 1 unless
 *   given); otherwise they are names, numbered in sorted order (or in the order of
 *   `classNames`).
 * - Fields may be double-quoted (`""` escapes a quote); quoted fields cannot span lines.
 *   Blank lines are skipped. Errors name the file and line.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs/promises"
import { Effect } from "effect"
import { DataError, type Dataset } from "./Dataset.ts"

/** Options of {@link parse} and {@link read}. */
export interface CsvOptions {
  /** Label column: header name or 0-based index; default the last column. */
  readonly label?: string | number
  /** Whether the first row is a header; default: detected. */
  readonly header?: boolean
  readonly delimiter?: string
  /** Per-sample shape (PyTorch layout) of the feature columns; default `[features]`. */
  readonly shape?: ReadonlyArray<number>
  /** Number of classes for integer labels (default: max label + 1). */
  readonly classes?: number
  /** Class names in index order, for string labels (default: sorted distinct labels). */
  readonly classNames?: ReadonlyArray<string>
  /** Dataset name for messages (default: the file path). */
  readonly name?: string
}

const splitLine = (line: string, delimiter: string): Array<string> | undefined => {
  const cells: Array<string> = []
  let cell = ""
  let quoted = false
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cell += '"'
        i++
      } else if (ch === '"') quoted = false
      else cell += ch
    } else if (ch === '"' && cell.trim() === "") {
      quoted = true
      cell = ""
    } else if (line.startsWith(delimiter, i)) {
      cells.push(cell.trim())
      cell = ""
      i += delimiter.length - 1
    } else cell += ch
  }
  if (quoted) return undefined
  cells.push(cell.trim())
  return cells
}

const isNumber = (cell: string): boolean => cell !== "" && Number.isFinite(Number(cell))

/** Parses CSV text into a dataset; `source` names it in errors. */
export const parse = (text: string, source: string, options: CsvOptions = {}): Effect.Effect<Dataset, DataError> =>
  Effect.gen(function* () {
    const fail = (detail: string, line?: number) => new DataError({ source, detail, ...(line === undefined ? {} : { line }) })
    const delimiter = options.delimiter ?? ","
    const rows: Array<{ readonly cells: ReadonlyArray<string>; readonly line: number }> = []
    const lines = text.split(/\r?\n/)
    for (let i = 0; i < lines.length; i++) {
      if (lines[i]!.trim() === "") continue
      const cells = splitLine(lines[i]!, delimiter)
      if (cells === undefined) return yield* fail("unterminated quoted field", i + 1)
      rows.push({ cells, line: i + 1 })
    }
    const first = rows[0]
    if (first === undefined) return yield* fail("no rows")
    const width = first.cells.length
    if (width < 2) return yield* fail(`needs at least one feature column and a label column, found ${width} column`, first.line)
    const named = typeof options.label === "string"
    const header = options.header ?? (named || !first.cells.every((cell, i) => i === labelIndexGuess(options, width) || isNumber(cell)))
    let labelIndex: number
    if (typeof options.label === "string") {
      if (!header) return yield* fail(`label column "${options.label}" is named but the file has no header row`)
      labelIndex = first.cells.indexOf(options.label)
      if (labelIndex < 0) return yield* fail(`no column "${options.label}" in the header (${first.cells.join(", ")})`, first.line)
    } else {
      labelIndex = options.label ?? width - 1
      if (!Number.isInteger(labelIndex) || labelIndex < 0 || labelIndex >= width) return yield* fail(`label column ${labelIndex} is outside the ${width} columns`)
    }
    const body = header ? rows.slice(1) : rows
    if (body.length === 0) return yield* fail("a header but no data rows")
    const features = width - 1
    const shape = options.shape ?? [features]
    if (shape.reduce((a, b) => a * b, 1) !== features) return yield* fail(`shape [${shape.join(", ")}] does not hold the ${features} feature columns`)
    const x = new Float32Array(body.length * features)
    const rawLabels: Array<string> = []
    for (const [r, row] of body.entries()) {
      if (row.cells.length !== width) return yield* fail(`has ${row.cells.length} columns, the first row has ${width}`, row.line)
      let f = 0
      for (let c = 0; c < width; c++) {
        const cell = row.cells[c]!
        if (c === labelIndex) {
          if (cell === "") return yield* fail("empty label", row.line)
          rawLabels.push(cell)
          continue
        }
        if (!isNumber(cell)) return yield* fail(`column ${c + 1} ("${cell}") is not a number`, row.line)
        x[r * features + f++] = Number(cell)
      }
    }
    const integers = options.classNames === undefined && rawLabels.every((l) => /^\d+$/.test(l))
    const y = new Int32Array(body.length)
    let classes: number
    let classNames: ReadonlyArray<string> | undefined
    if (integers) {
      rawLabels.forEach((l, i) => (y[i] = Number(l)))
      const max = rawLabels.reduce((m, l) => Math.max(m, Number(l)), 0)
      classes = options.classes ?? max + 1
      if (max >= classes) {
        const at = rawLabels.findIndex((l) => Number(l) >= classes)
        return yield* fail(`label ${rawLabels[at]} is not below classes = ${classes}`, body[at]!.line)
      }
    } else {
      classNames = options.classNames ?? [...new Set(rawLabels)].sort()
      const index = new Map(classNames.map((n, i) => [n, i] as const))
      for (const [i, l] of rawLabels.entries()) {
        const k = index.get(l)
        if (k === undefined) return yield* fail(`label "${l}" is not one of the class names (${classNames.join(", ")})`, body[i]!.line)
        y[i] = k
      }
      classes = classNames.length
    }
    return { name: options.name ?? source, shape, count: body.length, x, y, classes, ...(classNames === undefined ? {} : { classNames }) }
  })

const labelIndexGuess = (options: CsvOptions, width: number): number => (typeof options.label === "number" ? options.label : width - 1)

/** Reads a CSV file into a dataset. */
export const read = Effect.fn("Csv.read")(function* (file: string, options: CsvOptions = {}) {
  const text = yield* Effect.tryPromise({
    try: () => fs.readFile(file, "utf8"),
    catch: (cause) => new DataError({ source: file, detail: `cannot read: ${cause instanceof Error ? cause.message : String(cause)}` })
  })
  return yield* parse(text, file, options)
})
