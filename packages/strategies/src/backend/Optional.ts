/**
 * Optional packages, imported only when asked for (`@tensorflow/tfjs-node[-gpu]`, `webgpu`,
 * `@tensorflow/tfjs-backend-webgpu`): by computed name, so neither the bundler nor the type checker
 * resolves them, and a missing one is a typed error of the caller's, never a failed install.
 *
 * @since 0.2.0
 */

/** Imports `specifier` at run time (rejects when it is not installed). */
export const importOptional = (specifier: string): Promise<any> => import(specifier)

/** A cause as one line: an Error's message, else its string. */
export const describeCause = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))
