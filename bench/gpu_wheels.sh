#!/usr/bin/env bash
# Companion of bench/gpu_check.sh, run on a machine with network access (any OS/CPU): downloads the cp312
# manylinux x86_64 wheels that a fresh GPU machine lacks (versions pinned in requirements.lock) into
# gpu_wheels/, renders a tiny world's COGs into gpu_world/ (both git-ignored), and checks that code + wheels
# + COGs fit in the 64 MiB that travels with a working tree.
#
#   source scripts/env.sh && bash bench/gpu_wheels.sh        # then: bash bench/gpu_check.sh on the GPU machine
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=gpu_wheels
WORLD=gpu_world
LIMIT_MIB=64
# what the GPU machine lacks (it has torch, timm, numpy, scipy, scikit-image, pandas, matplotlib, tqdm):
# rasterio and its pure-Python dependencies, shapely, pyproj, omegaconf + antlr4, segmentation-models-pytorch
PKGS=(rasterio affine attrs certifi click click-plugins cligj shapely pyproj omegaconf segmentation_models_pytorch)
pin() {  # the version requirements.lock pins for package $1 (names compared case- and -/_-insensitively)
  local want v
  want=$(echo "$1" | tr 'A-Z_' 'a-z-')
  v=$(awk -F'==' -v w="$want" '{n=tolower($1); gsub("_","-",n)} n==w {print $2}' requirements.lock)
  [ -n "$v" ] || { echo "gpu_wheels.sh: $1 is not pinned in requirements.lock" >&2; exit 1; }
  echo "$1==$v"
}
specs=()
for p in "${PKGS[@]}"; do specs+=("$(pin "$p")"); done
rm -rf "$WHEELS" && mkdir -p "$WHEELS"
echo "downloading ${specs[*]}" >&2
pip download -q --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  --platform any --no-deps -d "$WHEELS" "${specs[@]}"
# antlr4-python3-runtime (omegaconf's parser) is published as an sdist only: build its (pure-Python) wheel
pip wheel -q --no-deps --no-binary=:all: -w "$WHEELS" "$(pin antlr4-python3-runtime)"
# the GPU machine's pip must take them: resolve and unpack for CPython 3.12 on manylinux x86_64 (nothing runs)
check=$(mktemp -d)
pip install -q --no-index --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
  --platform manylinux_2_28_x86_64 --target "$check" "$WHEELS"/*.whl
echo "the $(ls "$WHEELS" | wc -l) wheels install for CPython 3.12 manylinux x86_64 ($(du -sh "$check" | cut -f1) unpacked)" >&2
rm -rf "$check"
echo "rendering the tiny world into $WORLD/" >&2
python bench/gpu_world.py "$WORLD"
# what travels: the tracked and untracked-but-not-ignored files of the working tree, plus the two folders
code=$(git ls-files -co --exclude-standard -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
wheels=$(du -sb "$WHEELS" | cut -f1)
world=$(du -sb "$WORLD" | cut -f1)
total=$((code + wheels + world))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "code $(mib "$code") + wheels $(mib "$wheels") ($(ls "$WHEELS" | wc -l) files) + world $(mib "$world") = $(mib "$total") of $LIMIT_MIB MiB"
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "gpu_wheels.sh: over $LIMIT_MIB MiB: it will not travel with the working tree" >&2
  exit 1
fi
