/**
 * `node bench/bigmerge/run.ts` (or `npm run bench -- bigmerge`): the LLM-scale bf16 merge bench
 * (`e2e.ts`); flags as README.md lists them.
 */
await import("./e2e.ts")
