#!/usr/bin/env bash
# The prepared GPU check: on a fresh GPU machine (Python 3.12 with torch, timm, numpy, scipy, scikit-image,
# pandas, matplotlib, tqdm; no rasterio, shapely, pyproj, omegaconf, segmentation-models-pytorch, dvc) installs
# the wheels that bench/gpu_wheels.sh downloaded (gpu_wheels/, carried with the working tree) into a folder on
# PYTHONPATH, then runs bench/gpu.py (limit, stitched, ratio, train windows/s, peak memory of three models at
# bf16 and fp32) and the train + evaluate stage code on the tiny world in gpu_world/ at bf16 and fp32.
# Meant to take under 5 minutes on one H200.
#
#   bash bench/gpu_check.sh                 # on the GPU machine (device cuda)
#   bash bench/gpu_check.sh --device cpu    # the dry run on a CPU (small sizes, fp32 only in bench/gpu.py)
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    *) echo "usage: bash bench/gpu_check.sh [--device cuda|cuda:N|cpu]" >&2; exit 2 ;;
  esac
done
if [ ! -d gpu_wheels ] || [ ! -f gpu_world/split.csv ]; then
  echo "gpu_check.sh: gpu_wheels/ or gpu_world/ is missing: run bash bench/gpu_wheels.sh where PyPI is reachable" >&2
  exit 1
fi
start=$(date +%s)
site="${TMPDIR:-/tmp}/sandmine-gpu-site"
if python -c "import rasterio, shapely, pyproj, omegaconf, segmentation_models_pytorch" 2>/dev/null; then
  echo "gpu_check.sh: this Python has the packages already: nothing installed from gpu_wheels/" >&2
else
  rm -rf "$site"
  python -m pip install -q --no-index --no-deps --target "$site" gpu_wheels/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  echo "gpu_check.sh: installed $(ls gpu_wheels | wc -l) wheels into $site in $(($(date +%s) - start)) s" >&2
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export MPLBACKEND=Agg
python -c "import sys, torch; print(f'Python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}, sees {torch.cuda.device_count()} GPU(s)')"
echo
if [ "$DEVICE" = cpu ]; then
  # vit_base alone takes over 20 minutes on 2 shared cores: the dry run checks the script, not the CPU's speed
  python bench/gpu.py --device cpu --quick --steps 1 --models resnet18+unet resnet50+unet
  echo
  python bench/gpu_check.py --device cpu --epochs 1 --windows 32 --workers 0
else
  python bench/gpu.py --device "$DEVICE" --cpu-steps 0
  echo
  python bench/gpu_check.py --device "$DEVICE" --epochs 2 --windows 384 --workers 4
fi
echo
echo "gpu_check.sh: done in $(($(date +%s) - start)) s"
