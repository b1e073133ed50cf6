"""The package version: the installed distribution's, else this checkout's pyproject."""
from __future__ import annotations

__all__ = ["__version__"]


def _find() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vidseek")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0.1.0+checkout"


__version__ = _find()
