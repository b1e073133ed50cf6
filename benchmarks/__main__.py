"""``python -m benchmarks``: see ``benchmarks.cli`` (suites, presets, report, compare)."""
from __future__ import annotations

import sys

from benchmarks.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
