"""Index configuration: typed, validated, stored in the index manifest.

A config file is TOML (``--config FILE``); unknown keys are errors that list the
valid ones, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.errors import InputError

__all__ = ["IndexConfig", "load_config"]

BLOCKS: tuple[str, ...] = ("visual", "speech", "ocr", "metadata")


@dataclass(frozen=True)
class IndexConfig:
    """Settings that fix how an index is built. Changing an encoder needs a new index."""

    text_encoder: str = "minilm"
    image_encoder: str = "imagenet-minilm"
    image_options: dict = field(default_factory=dict)  # e.g. {"architecture": ..., "checkpoint": ...}
    shards: int = 4
    flat_max: int = 20_000
    approx_factory: str = "auto"
    use_gpu: str = "auto"
    # Index-time block weights of the joint vector. 1.0 everywhere keeps each block a
    # unit vector, so query-side weights alone decide the mix (DESIGN.md).
    block_weights: dict = field(default_factory=lambda: {b: 1.0 for b in BLOCKS})

    def __post_init__(self) -> None:
        if self.shards < 1 or self.shards > 1024:
            raise InputError(f"shards must be in 1..1024, got {self.shards}")
        if self.flat_max < 1:
            raise InputError(f"flat_max must be positive, got {self.flat_max}")
        if self.use_gpu not in ("auto", "never", "always"):
            raise InputError(f"use_gpu must be auto, never or always, got {self.use_gpu!r}")
        unknown = set(self.block_weights) - set(BLOCKS)
        if unknown:
            raise InputError(f"unknown blocks in block_weights: {sorted(unknown)}; valid: {list(BLOCKS)}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, origin: str = "config") -> "IndexConfig":
        valid = {f.name for f in fields(cls)}
        unknown = set(data) - valid
        if unknown:
            raise InputError(f"{origin}: unknown settings {sorted(unknown)}; valid: {sorted(valid)}")
        return cls(**data)


def load_config(path: str | Path) -> IndexConfig:
    """Read an ``IndexConfig`` from a TOML file (keys at top level or under [index])."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as e:
        raise InputError(f"config file {path} does not exist") from e
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"config file {path} is not valid TOML: {e}") from e
    return IndexConfig.from_dict(data.get("index", data), origin=str(path))
