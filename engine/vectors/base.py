"""The vector-store contract: sharded FAISS indexes with explicit int64 global ids.

One ``VectorStore`` lives in one folder and holds the vectors of one *space* (the
joint space, or one modality). Implementations: ``engine.vectors.faiss`` (one shard)
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

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

__all__ = ["SearchParams", "VectorSettings", "VectorStoreProtocol"]


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
    """How a store builds its shards. Stored in the manifest and checked on open."""

    dim: int
    num_shards: int = 4
    flat_max: int = 20_000  # a shard stays exact (Flat) up to this many vectors
    # "auto", "compressed" (refine rows on disk: docs/vectors.md) or a FAISS factory
    # string, "{nlist}" filled from the shard's size
    approx_factory: str = "auto"
    train_sample: int = 100_000
    compact_ratio: float = 0.2  # compact a shard when tombstones exceed this share
    use_gpu: str = "auto"  # "auto" | "never" | "always"
    extra: dict = field(default_factory=dict)


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
