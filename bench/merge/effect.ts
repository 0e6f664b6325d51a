/**
 * The bench sits outside the workspace packages, where the bare specifier "effect" does not
 * resolve; this re-exports the strategies package's own copy (the same files its kernels load).
 */
export * from "../../packages/strategies/node_modules/effect/dist/index.js"
