#!/usr/bin/env bash
# Fresh machine -> tests: system packages, the virtualenv, then pytest.
# The default run excludes the `slow` marker; VIDSEEK_SLOW=1 adds the slow suites.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh
scripts/setup.sh
set +e
.venv/bin/python -m pytest -q "$@"
rc=$?
set -e
[ $rc -eq 5 ] && { echo "pytest collected no tests"; rc=0; }
[ $rc -ne 0 ] && exit $rc
if [ "${VIDSEEK_SLOW:-0}" = "1" ]; then
  .venv/bin/python -m pytest -q -m slow
  rc=$?
  [ $rc -eq 5 ] && rc=0
fi
exit $rc
