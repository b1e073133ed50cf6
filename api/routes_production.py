"""HTTP routes: clip export and highlight reels."""
from __future__ import annotations

from fastapi import FastAPI

__all__ = ["install"]


def install(app: FastAPI) -> None:
    """Add this module's routes to ``app`` (none yet)."""
