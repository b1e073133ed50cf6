"""`vidseek bench`: the benchmark suites (see benchmarks/__main__.py)."""
from __future__ import annotations

__all__ = ["register"]


def register(sub) -> None:
    """Add `vidseek bench` (none yet)."""
