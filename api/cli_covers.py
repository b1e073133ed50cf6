"""`vidseek` subcommands: covers."""
from __future__ import annotations

__all__ = ["register"]


def register(sub) -> None:
    """Add this module's subparsers to the `vidseek` command (none yet)."""
