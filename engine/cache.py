"""The per-user cache folder for derived model files (joined weights, fitted heads).

``$VIDSEEK_CACHE`` if set, else ``$XDG_CACHE_HOME/vidseek``, else ``~/.cache/vidseek``.
Everything in it can be deleted; it is rebuilt on demand.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root() -> Path:
    env = os.environ.get("VIDSEEK_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "vidseek"
