/** The bundled CLI's entry, packages/runner/dist/crucible.mjs. */
export declare const cliBundle: string
export declare const distDir: string
export declare const isFresh: () => boolean
export declare const build: () => Promise<void>
/** Builds the bundle unless it is newer than every input; returns the CLI entry's path. */
export declare const ensureBuilt: () => Promise<string>
