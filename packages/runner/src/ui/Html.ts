/**
 * Small pure helpers for writing HTML and SVG as text: escaping, numbers short enough for
 * coordinates, JSON that is safe inside a `<script>` element, and human units (the CLI's).
 *
 * @since 0.1.0
 */

/** Escapes text for HTML/SVG content and double- or single-quoted attribute values. */
export const escape = (text: string): string =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;")

/** A coordinate with at most two decimals ("12.5", not "12.500000001"). */
export const num = (x: number): string => (Number.isFinite(x) ? String(Math.round(x * 100) / 100) : "0")

/**
 * JSON for a `<script type="application/json">` element: `<`, `>`, `&` and the line separators
 * are escaped, so no value can close the element or start a comment.
 */
export const scriptJson = (value: unknown): string =>
  JSON.stringify(value ?? null)
    .replace(/</g, "\\u003c")
    .replace(/>/g, "\\u003e")
    .replace(/&/g, "\\u0026")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029")

/** Byte sizes and durations as the CLI prints them. */
export { bytes, duration } from "../cli/Format.ts"

/** A number for a table cell: integers as they are, others with 4 significant digits. */
export const number = (x: number): string =>
  Number.isInteger(x) ? String(x) : Math.abs(x) >= 1e-3 && Math.abs(x) < 1e6 ? String(Number(x.toPrecision(4))) : x.toExponential(3)

/** Text cut to `max` characters with an ellipsis. */
export const clip = (text: string, max: number): string => (text.length <= max ? text : `${text.slice(0, Math.max(1, max - 1))}…`)
