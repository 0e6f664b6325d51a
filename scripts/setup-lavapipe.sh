#!/usr/bin/env bash
# Sets up lavapipe, Mesa's CPU Vulkan driver, for Crucible's WebGPU backend (Dawn) on a machine without a GPU.
# Dawn needs Mesa >= 25 (bookworm's 22.3.6 lacks shaderUniform*ArrayDynamicIndexing), so the driver comes from
# Debian's bookworm-backports: the package is downloaded with a private apt configuration and unpacked into
# $CRUCIBLE_LAVAPIPE_DIR (default ~/.cache/crucible/lavapipe); the system's Mesa is not replaced. Only
# libvulkan_lvp.so is used, with an ICD file pointing at it that `--backend webgpu` finds there (or set
# VK_DRIVER_FILES=<dir>/lvp_icd.json yourself). The Vulkan loader and the driver's runtime libraries (LLVM 15…)
# come from bookworm: `libvulkan1` and `mesa-vulkan-drivers`. Idempotent: a second run checks and exits.
set -euo pipefail

dir="${CRUCIBLE_LAVAPIPE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/crucible/lavapipe}"
version="${CRUCIBLE_LAVAPIPE_VERSION:-25.0.7-2~bpo12+1}"
icd="$dir/lvp_icd.json"

if [ -f "$icd" ] && [ -f "$dir/version" ] && [ "$(cat "$dir/version")" = "$version" ] && ldconfig -p | grep -q 'libvulkan.so.1 '; then
  echo "lavapipe $version: $icd"
  exit 0
fi

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# The loader and the runtime libraries lavapipe links against (LLVM, libdrm, …), from the system's own release.
if ! ldconfig -p | grep -q 'libvulkan.so.1 ' || ! dpkg -s mesa-vulkan-drivers >/dev/null 2>&1; then
  sudo_ apt-get update -qq
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libvulkan1 mesa-vulkan-drivers >/dev/null
fi

# The backported driver, through a private apt configuration (its own lists and cache; sources.list untouched).
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/etc/preferences.d" "$work/etc/sources.list.d"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main" > "$work/etc/sources.list"
opts=(-o "Dir::Etc=$work/etc" -o "Dir::Etc::sourcelist=$work/etc/sources.list" -o "Dir::Etc::sourceparts=$work/etc/sources.list.d"
      -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "Dir::Etc::preferencesparts=$work/etc/preferences.d"
      -o "APT::Get::List-Cleanup=0" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=$(id -un)")
apt-get "${opts[@]}" update -qq
(cd "$work" && apt-get "${opts[@]}" download "mesa-vulkan-drivers=$version" >/dev/null)
rm -rf "$dir.new"
mkdir -p "$dir.new"
dpkg -x "$work"/mesa-vulkan-drivers_*.deb "$dir.new/root"
lib="$(find "$dir.new/root" -name libvulkan_lvp.so | head -n 1)"
[ -n "$lib" ] || { echo "setup-lavapipe: libvulkan_lvp.so not found in mesa-vulkan-drivers $version" >&2; exit 1; }
final_lib="$dir/${lib#"$dir.new/"}"
cat > "$dir.new/lvp_icd.json" <<JSON
{ "file_format_version": "1.0.0", "ICD": { "library_path": "$final_lib", "api_version": "1.3.0" } }
JSON
echo "$version" > "$dir.new/version"
rm -rf "$dir"
mv "$dir.new" "$dir"
echo "lavapipe $version: $icd"
