#!/bin/sh
# The GPU check, run ON a GPU machine from the repository root with gpu-kit/ present (built here by
# scripts/gpu-kit.sh): needs no npm registry, no node_modules and no Vulkan loader. It unpacks Node
# and Dawn into a temporary folder, unpacks the kit's libvulkan1 there when the system has no
# libvulkan.so.1, points the loader at NVIDIA's ICD when /usr/local/nvidia/share/vulkan/icd.d holds
# one (else the system's drivers, or VK_DRIVER_FILES as given), prints the adapter, runs the GPU
# bench (merge + training, GPU against CPU) and writes the figures to $OUT/gpu-check.json, or to
# bench/out/gpu-check.json when $OUT is unset. Extra arguments go to the bench (e.g. --no-train).
#
#   sh scripts/gpu-check.sh [--size 67108864] [--steps 200] …
#
# Exits with the bench's status: 0 when every correctness check passed.
set -eu
root=$(pwd)
kit="${GPU_KIT:-$root/gpu-kit}"
[ -f "$kit/bench-gpu.mjs" ] || { echo "gpu-check: no kit at $kit: build it with 'sh scripts/gpu-kit.sh' where the repository is installed, and carry gpu-kit/" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

unxz_to() { # $1 file.xz, $2 target: xz when installed, else Python's lzma
  if command -v xz >/dev/null 2>&1; then xz -dc "$1" > "$2"
  elif command -v python3 >/dev/null 2>&1; then python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"
  else echo "gpu-check: neither xz nor python3 is here to unpack $1" >&2; exit 1; fi
}

# Node, and a copy of the kit's modules with Dawn unpacked (Node resolves packages beside the bundle).
unxz_to "$kit/node.xz" "$work/node" && chmod +x "$work/node"
cp -r "$kit/node_modules" "$kit/runner" "$kit/bench-gpu.mjs" "$work/"
unxz_to "$work/node_modules/webgpu/dist/linux-x64/dawn.node.xz" "$work/node_modules/webgpu/dist/linux-x64/dawn.node"
rm "$work/node_modules/webgpu/dist/linux-x64/dawn.node.xz"

# The Vulkan loader: the system's, else the kit's .deb unpacked (dpkg-deb, or ar + tar).
if ! { ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1 '; } && ! ls /usr/lib/x86_64-linux-gnu/libvulkan.so.1 >/dev/null 2>&1; then
  deb=$(ls "$kit"/libvulkan1_*.deb | head -n 1)
  mkdir -p "$work/vulkan"
  if command -v dpkg-deb >/dev/null 2>&1; then dpkg-deb -x "$deb" "$work/vulkan"
  else (cd "$work/vulkan" && ar x "$deb" && tar -xf data.tar.*); fi
  export LD_LIBRARY_PATH="$work/vulkan/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "gpu-check: Vulkan loader from the kit ($(basename "$deb"))"
fi
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -z "${VK_ICD_FILENAMES:-}" ] && [ -f "$nvidia_icd" ]; then export VK_DRIVER_FILES="$nvidia_icd"; fi
echo "gpu-check: VK_DRIVER_FILES=${VK_DRIVER_FILES:-(the default search of the loader)}"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
export MESA_SHADER_CACHE_DIR="$work/shader-cache"

out="${OUT:-$root/bench/out}/gpu-check.json"
"$work/node" --version
"$work/node" "$work/runner/bin/crucible.mjs" --version >/dev/null && echo "gpu-check: the bundled CLI starts"
"$work/node" --expose-gc "$work/bench-gpu.mjs" --out "$out" "$@"
