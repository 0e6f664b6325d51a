/**
 * `npm run bench -- generate` (or `node bench/generate/run.ts`): greedy generation with and without
 * the key/value cache (`bench/lm/generate.ts`; flags and figures in bench/lm/README.md).
 */
await import("../lm/generate.ts")
