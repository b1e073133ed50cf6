"""The vector-store contract: sharded FAISS indexes with explicit int64 global ids.

One ``VectorStore`` lives in one folder and holds the vectors of one *space* (the
joint space, or one modality). Implementations: ``engine.vectors.shard`` (one shard)
and ``engine.vectors.sharded`` (N shards, manifest, fan-out, heap merge).

Contract
--------
- ``add(ids, vectors, shard_keys)``: ``ids`` int64 (n,), unique global ids (segment
  ids); ``vectors`` float32 (n, dim), L2-normalised by the caller; ``shard_keys``
  int64 (n,) (the video's catalog id): shard = shard_key % num_shards, so all vectors
  of one video share a shard. Adding an id that is already live raises ``InputError``.
- ``remove(ids, shard_keys)``: removes those ids. Where the index type cannot remove
  (HNSW, any GPU index) the ids become tombstones, filtered out of every search and
  dropped by ``compact()``; removing an unknown id is a no-op.
- ``search(queries, params)`` -> ``(scores, ids)``, each (nq, k); inner-product
  scores, descending; missing results padded with score ``-inf`` and id ``-1``.
  ``params`` (``SearchParams``) travels with the call; a shared index is never
  mutated to apply it, so concurrent searches with different params are safe.
- ``save(applied_seq)``: persists dirty shards then the manifest, atomically; a crash
  at any point leaves the previous state readable. ``applied_seq`` is the catalog's
  operation-log sequence number that this state reflects (see ``engine.index``).
- ``count()`` live vectors; ``info()`` a JSON-able description for ``vidseek info``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from numbers import Integral, Real
from typing import Any, Mapping, Protocol

import numpy as np

from engine.errors import InputError, UnknownNameError

__all__ = ["SearchParams", "VectorSettings", "VectorStoreProtocol", "GPU_MODES", "extra_int"]

GPU_MODES = ("auto", "never", "always")
# VectorSettings field -> its key in an index config (TOML, the index manifest's
# "config") where the two names differ.
_CONFIG_NAMES = {"num_shards": "shards", "extra": "vector_extra"}


@dataclass(frozen=True)
class SearchParams:
    """Per-query search parameters; ``None`` means the store's default."""

    k: int = 10
    nprobe: int | None = None
    ef_search: int | None = None
    k_factor: int | None = None  # refine stage: candidates = k * k_factor
    # IVF: probe this share of each shard's lists (shards differ in nlist); an
    # explicit nprobe wins. None: the store's default share.
    probe_share: float | None = None

    def __post_init__(self) -> None:
        if not (1 <= self.k <= 10_000):
            raise ValueError(f"k must be in 1..10000, got {self.k}")
        if self.probe_share is not None and not (0.0 < self.probe_share <= 1.0):
            raise ValueError(f"probe_share must be in (0, 1], got {self.probe_share}")


@dataclass(frozen=True)
class VectorSettings:
    """How a store builds its shards: the one definition of the vector settings.

    The store's manifest records :meth:`to_dict` and checks it on open; an index
    config (``engine.config.IndexConfig``, a TOML file) sets every field but ``dim``
    (the encoders fix it) under its :meth:`config_names` key, and the index builds
    its store's settings with :meth:`from_config`.
    """

    dim: int
    num_shards: int = 4
    flat_max: int = 20_000  # a shard stays exact (Flat) up to this many vectors
    # "auto", "compressed" (refine rows on disk: docs/vectors.md) or a FAISS factory
    # string, "{nlist}" filled from the shard's size
    approx_factory: str = "auto"
    train_sample: int = 100_000
    compact_ratio: float = 0.2  # compact a shard when tombstones exceed this share
    use_gpu: str = "auto"  # "auto" | "never" | "always"
    # nprobe, ef_search, k_factor (search defaults), retrain_growth (default 8)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``settings`` record."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> VectorSettings:
        """The inverse of :meth:`to_dict`; ``ValueError`` if ``data`` is not such a record."""
        names = {f.name for f in fields(cls)}
        if not isinstance(data, Mapping) or "dim" not in data or set(data) - names:
            raise ValueError(f"not a VectorSettings record: {data!r}")
        return cls(**data)

    @classmethod
    def config_names(cls) -> dict[str, str]:
        """Each field but ``dim`` -> its key in an index config."""
        return {f.name: _CONFIG_NAMES.get(f.name, f.name) for f in fields(cls) if f.name != "dim"}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dim: int) -> VectorSettings:
        """Settings for a store of ``dim`` from an index config's keys (absent keys: defaults)."""
        values = {name: config[key] for name, key in cls.config_names().items() if key in config}
        return cls(dim=dim, **values)

    def to_config(self) -> dict[str, Any]:
        """These settings under their index config keys (``dim`` left out)."""
        return {key: getattr(self, name) for name, key in self.config_names().items()}

    def check(self) -> None:
        """Raise ``InputError`` / ``UnknownNameError`` for a field no store can use.

        The factory string is checked against FAISS by
        ``engine.vectors.sharded.validate_settings``.
        """
        if not isinstance(self.dim, int) or self.dim < 1:
            raise InputError(f"settings.dim must be a positive int, got {self.dim!r}")
        if not isinstance(self.num_shards, int) or not 1 <= self.num_shards <= 999:
            raise InputError(f"settings.num_shards must be in 1..999, got {self.num_shards!r}")
        for name, kinds in (("flat_max", Integral), ("train_sample", Integral), ("compact_ratio", Real)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, kinds):
                what = "an int" if kinds is Integral else "a number"
                raise InputError(f"settings.{name} must be {what}, got {value!r}")
        if self.flat_max < 0:
            raise InputError(f"settings.flat_max must be >= 0, got {self.flat_max}")
        if self.train_sample < 1:
            raise InputError(f"settings.train_sample must be >= 1, got {self.train_sample}")
        if not 0 < self.compact_ratio <= 1:
            raise InputError(f"settings.compact_ratio must be in (0, 1], got {self.compact_ratio}")
        if self.use_gpu not in GPU_MODES:
            raise UnknownNameError("use_gpu mode", self.use_gpu, GPU_MODES)
        if self.extra is not None and not isinstance(self.extra, dict):
            raise InputError(f"settings.extra must be a table of settings, got {self.extra!r}")
        for key in ("nprobe", "ef_search", "k_factor"):
            extra_int(self.extra or {}, key)


def extra_int(extra: dict, key: str) -> int | None:
    """``extra[key]``, which must be a positive int when present."""
    value = extra.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InputError(f"settings.extra[{key!r}] must be a positive int, got {value!r}")
    return value


class VectorStoreProtocol(Protocol):
    """What ``engine.index`` and ``query`` rely on."""

    settings: VectorSettings

    @property
    def applied_seq(self) -> int: ...

    def add(self, ids: np.ndarray, vectors: np.ndarray, shard_keys: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray, shard_keys: np.ndarray) -> None: ...

    def search(self, queries: np.ndarray, params: SearchParams) -> tuple[np.ndarray, np.ndarray]: ...

    def count(self) -> int: ...

    def save(self, applied_seq: int) -> None: ...

    def info(self) -> dict: ...
