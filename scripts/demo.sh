#!/usr/bin/env bash
# Fresh machine -> demo: system packages (plus a Debian package of sample clips),
# the virtualenv, then index the packaged sample media and run example searches.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh
if [ ! -d /usr/share/forensics-samples ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq forensics-samples-files || true
fi
scripts/setup.sh
exec .venv/bin/vidseek demo --index "${1:-demo-index}"
