"""Building and timing vector stores for the latency and scale suites.

Vectors come from ``benchmarks.bench_vectors.SyntheticJoint`` (seeded, clustered,
blocks of 384 dims with missing modalities, as vidseek's joint vectors are), made in
batches so that no suite holds all ``n`` at once: each batch is added to the store
and folded into the exact ground truth (``faiss.ResultHeap``) as it comes.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from benchmarks.presets import SweepPoint
from benchmarks.suites.common import latency_summary
from engine.errors import InputError
from engine.vectors import SearchParams, VectorSettings, VectorStore, compressed_factory

__all__ = ["Dataset", "resolve_factory_name", "store_settings", "build_store", "time_queries", "stream_batches",
           "search_params", "settings_dict"]


@dataclass
class Dataset:
    """Seeded synthetic base vectors (made on demand, batch by batch) and queries."""

    n: int
    dim: int
    queries: np.ndarray
    seed: int
    batch: int

    @classmethod
    def make(cls, n: int, dim: int, nq: int, *, seed: int = 0, batch: int = 100_000) -> "Dataset":
        if n < 1 or nq < 1:
            raise InputError(f"a vector benchmark needs n >= 1 and queries >= 1, got n={n}, queries={nq}")
        gen = _generator(dim, seed)
        return cls(n, dim, gen.batch(0, nq, stream=1), seed, batch)

    def batches(self) -> Any:
        """(start, vectors) for every batch of the base set, in order."""
        gen = _generator(self.dim, self.seed)
        for start in range(0, self.n, self.batch):
            yield start, gen.batch(start, min(self.batch, self.n - start))


_GENERATORS: dict[tuple[int, int], Any] = {}


def _generator(dim: int, seed: int) -> Any:
    # Its constructor draws per-block rotations (a few 384x384 QRs): build it once.
    from benchmarks.bench_vectors import SyntheticJoint

    key = (dim, seed)
    if key not in _GENERATORS:
        _GENERATORS[key] = SyntheticJoint(dim=dim, seed=seed)
    return _GENERATORS[key]


def stream_batches(ds: Dataset, k: int, sinks: Sequence[Callable[[int, np.ndarray], None]]) -> tuple[np.ndarray, float]:
    """Feed every batch to each sink and compute the exact top-``k`` ids of every query
    (inner product); returns (ground truth (nq, k), seconds spent on ground truth)."""
    import faiss

    heap = faiss.ResultHeap(len(ds.queries), k, keep_max=True)
    gt_s = 0.0
    for start, x in ds.batches():
        for sink in sinks:
            sink(start, x)
        t = time.perf_counter()
        d, i = faiss.knn(ds.queries, x, min(k, len(x)), metric=faiss.METRIC_INNER_PRODUCT)
        if d.shape[1] < k:  # a last batch shorter than k
            d = np.pad(d, ((0, 0), (0, k - d.shape[1])), constant_values=-np.inf)
            i = np.pad(i, ((0, 0), (0, k - i.shape[1])), constant_values=-1)
        heap.add_result(d, np.where(i >= 0, i + start, -1))
        gt_s += time.perf_counter() - t
    heap.finalize()
    return heap.I.copy(), gt_s


def resolve_factory_name(factory: str, dim: int) -> str:
    """``"compressed"`` -> ``compressed_factory(dim)``; ``"Flat"`` stays; others as given."""
    if factory == "compressed":
        return compressed_factory(dim)
    return factory


def store_settings(dim: int, factory: str, *, n: int, shards: int, flat_max: int, train_sample: int) -> VectorSettings:
    """VectorSettings for a named factory: ``"Flat"`` keeps every shard exact."""
    if factory == "Flat":
        return VectorSettings(dim=dim, num_shards=shards, flat_max=max(n, 1) + 1, train_sample=train_sample)
    return VectorSettings(dim=dim, num_shards=shards, flat_max=flat_max,
                          approx_factory=resolve_factory_name(factory, dim), train_sample=train_sample)


def build_store(path: Path, settings: VectorSettings) -> tuple[VectorStore, Callable[[int, np.ndarray], None], dict]:
    """Create an empty store and a sink that adds a batch to it; the returned dict
    accumulates the add seconds (``add_s``)."""
    store = VectorStore.create(path, settings)
    timing = {"add_s": 0.0}

    def sink(start: int, x: np.ndarray) -> None:
        ids = np.arange(start, start + len(x), dtype=np.int64)
        t = time.perf_counter()
        store.add(ids, x, ids // 50)  # videos of 50 segments share a shard, as in bench_vectors
        timing["add_s"] += time.perf_counter() - t

    return store, sink, timing


def time_queries(search_one: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, *, warmup: int,
                 repeats: int) -> tuple[dict[str, Any], np.ndarray]:
    """Warm up on the first ``warmup`` queries, then time every query one at a time,
    ``repeats`` times; returns (``latency_summary``, the ids of the last repeat)."""
    if repeats < 1:
        raise InputError(f"repeats must be at least 1, got {repeats}")
    for i in range(min(warmup, len(queries))):
        search_one(queries[i : i + 1])
    runs: list[list[float]] = []
    found: list[np.ndarray] = []
    for _ in range(repeats):
        lat: list[float] = []
        found = []
        for i in range(len(queries)):
            t = time.perf_counter()
            ids = search_one(queries[i : i + 1])
            lat.append((time.perf_counter() - t) * 1000)
            found.append(ids[0])
        runs.append(lat)
    return latency_summary(runs), np.stack(found)


def search_params(point: SweepPoint, k: int) -> SearchParams:
    """The engine's per-query parameters for a sweep point."""
    return SearchParams(k=k, nprobe=point.nprobe, ef_search=point.ef_search, k_factor=point.k_factor)


def settings_dict(settings: VectorSettings) -> dict[str, Any]:
    return asdict(settings)
