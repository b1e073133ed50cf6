"""The confidence levels of a hit, lowest first (``query.confidence`` assigns them)."""
from __future__ import annotations

__all__ = ["CONFIDENCE_LEVELS", "DEFAULT_MIN_CONFIDENCE", "level_rank"]

CONFIDENCE_LEVELS: tuple[str, ...] = ("low", "medium", "high")
# What the API, the CLI and the web page hide below unless asked otherwise: "low" hits
# are more often wrong than right (docs/results.md has the measured rates).
DEFAULT_MIN_CONFIDENCE = "medium"


def level_rank(level: str) -> int:
    return CONFIDENCE_LEVELS.index(level)
