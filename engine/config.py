"""Index configuration: typed, validated, stored in the index manifest.

A config file is TOML (``--config FILE``); unknown keys are errors that list the
valid ones, so a typo never silently falls back to a default. Example::

    [index]
    shards = 8
    approx_factory = "compressed"
    train_sample = 200000
    compact_ratio = 0.3
    vector_extra = { k_factor = 32, nprobe = 64 }

The vector store's settings are those of ``engine.vectors.VectorSettings`` (every
field but ``dim``, which the encoders fix), under :meth:`VectorSettings.config_names`
keys: ``shards`` is its ``num_shards`` and ``vector_extra`` its ``extra``
(``nprobe``, ``ef_search``, ``k_factor``, ``retrain_growth``).
"""
from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.catalog import MODALITIES
from engine.errors import InputError
from engine.vectors.base import GPU_MODES, VectorSettings

__all__ = ["IndexConfig", "load_config", "DEFAULT_IMAGE_OPTIONS"]

_VECTORS = VectorSettings(dim=1)  # the store's defaults (dim comes from the encoders)
# Settings added after the first index format: the manifest records them only when
# they differ from the default, so an index built with the defaults writes the same
# manifest as before they existed (and older builds still read it).
_WRITTEN_WHEN_SET = ("train_sample", "compact_ratio", "vector_extra")

# The image encoder options a new index gets when none are given. The ImageNet ConSE
# encoders mix their 50 most likely classes, not the 10 of the class default: measured
# on a fresh index of ../shared/media (session 7, docs/labels.md), MRR public 0.814 ->
# 0.816, written moments 0.713 -> 0.725, written msrvtt captions 0.471 -> 0.510. An
# index built before records ``{}`` and keeps the 10 its vectors were made with.
# Each class prompt's embedding also takes in its first 3 WordNet hypernyms (session 9,
# ``engine.models.imagenet.HYPERNYM_MIN_DEPTH``): hand-labelled keyframes' mAP 0.306 ->
# 0.331; on a fresh index MRR public 0.812 -> 0.830, written moments 0.732 -> 0.732,
# msrvtt captions 0.530 -> 0.516 (R@5 0.617 -> 0.667); docs/labels.md. An index built
# before records ``{"top_k": 50}`` and keeps the plain class prompts.
DEFAULT_IMAGE_OPTIONS: dict[str, dict] = {
    name: {"top_k": 50, "hypernyms": 3}
    for name in ("imagenet-minilm", "imagenet-effnet-minilm", "imagenet-ensemble-minilm")}


@dataclass(frozen=True)
class IndexConfig:
    """Settings that fix how an index is built. Changing an encoder needs a new index."""

    text_encoder: str = "minilm"
    image_encoder: str = "imagenet-effnet-minilm"
    # e.g. {"architecture": ..., "checkpoint": ...}; None: DEFAULT_IMAGE_OPTIONS of the encoder
    image_options: dict | None = None
    # The joint vector store's settings: VectorSettings' fields under their config
    # names (VectorSettings.config_names; tests/test_index.py checks none is missing).
    shards: int = _VECTORS.num_shards
    flat_max: int = _VECTORS.flat_max
    approx_factory: str = _VECTORS.approx_factory
    use_gpu: str = _VECTORS.use_gpu
    train_sample: int = _VECTORS.train_sample
    compact_ratio: float = _VECTORS.compact_ratio
    vector_extra: dict = field(default_factory=dict)
    # Index-time block weights of the joint vector. 1.0 everywhere keeps each block a
    # unit vector, so query-side weights alone decide the mix (DESIGN.md).
    block_weights: dict = field(default_factory=lambda: {b: 1.0 for b in MODALITIES})

    def __post_init__(self) -> None:
        if self.image_options is None:
            object.__setattr__(self, "image_options", dict(DEFAULT_IMAGE_OPTIONS.get(self.image_encoder, {})))
        elif not isinstance(self.image_options, dict):
            raise InputError(f"image_options must be a table of encoder options, got {self.image_options!r}")
        if self.shards < 1 or self.shards > 999:  # VectorSettings.check's bound on num_shards
            raise InputError(f"shards must be in 1..999, got {self.shards}")
        if self.flat_max < 1:
            raise InputError(f"flat_max must be positive, got {self.flat_max}")
        if self.use_gpu not in GPU_MODES:
            raise InputError(f"use_gpu must be auto, never or always, got {self.use_gpu!r}")
        unknown = set(self.block_weights) - set(MODALITIES)
        if unknown:
            raise InputError(f"unknown blocks in block_weights: {sorted(unknown)}; valid: {list(MODALITIES)}")
        self.vector_settings(dim=1).check()  # the other vector settings; dim is the encoders'

    def vector_settings(self, dim: int) -> VectorSettings:
        """The settings of the index's joint vector store (``dim``: the joint vector's)."""
        return VectorSettings.from_config(asdict(self), dim)

    def as_dict(self) -> dict[str, Any]:
        """The manifest's ``config`` record (later settings only when set, see above)."""
        data = asdict(self)
        defaults = _VECTORS.to_config()
        for key in _WRITTEN_WHEN_SET:
            if data[key] == defaults[key]:
                del data[key]
        return data

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
