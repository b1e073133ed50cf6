"""Building and timing vector stores: the latency and scale suites and
``bench_vectors`` (``benchmarks.suites.vectors``).

Vectors come from ``benchmarks.synthetic.SyntheticJoint`` (seeded, clustered,
blocks of 384 dims with missing modalities, as vidseek's joint vectors are), made in
batches so that no run holds all ``n`` at once: each batch is added to the store
and folded into the exact ground truth (``faiss.ResultHeap``) as it comes.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, MutableMapping, Sequence

import numpy as np

from benchmarks.core import latency_summary, time_each
from benchmarks.presets import SweepPoint
from benchmarks.synthetic import SyntheticJoint
from engine.errors import InputError
from engine.vectors import SearchParams, VectorSettings, VectorStore, compressed_factory

__all__ = ["Dataset", "resolve_factory_name", "store_settings", "build_store", "time_queries", "stream_batches",
           "search_params", "settings_dict", "knob_applies"]


@dataclass
class Dataset:
    """Seeded synthetic base vectors (made on demand, batch by batch) and queries.

    ``shape`` holds ``SyntheticJoint``'s keyword arguments besides ``dim`` and
    ``seed`` (clusters, noise, decay, p_missing); empty: its defaults."""

    n: int
    dim: int
    queries: np.ndarray
    seed: int
    batch: int
    shape: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def make(cls, n: int, dim: int, nq: int, *, seed: int = 0, batch: int = 100_000, **shape: Any) -> "Dataset":
        if n < 1 or nq < 1:
            raise InputError(f"a vector benchmark needs n >= 1 and queries >= 1, got n={n}, queries={nq}")
        gen = generator(dim, seed, **shape)
        return cls(n, dim, gen.batch(0, nq, stream=1), seed, batch, dict(shape))

    def starts(self) -> range:
        """The first id of every batch of the base set, in order."""
        return range(0, self.n, self.batch)

    def make_batch(self, start: int) -> np.ndarray:
        """Base vectors ``start .. start + batch`` (fewer at the end)."""
        return generator(self.dim, self.seed, **self.shape).batch(start, min(self.batch, self.n - start))


_GENERATORS: dict[tuple, SyntheticJoint] = {}


def generator(dim: int, seed: int, **shape: Any) -> SyntheticJoint:
    """The ``SyntheticJoint`` of these settings, built once per process (its
    constructor draws per-block rotations, a few 384x384 QRs)."""
    key = (dim, seed, tuple(sorted(shape.items())))
    if key not in _GENERATORS:
        _GENERATORS[key] = SyntheticJoint(dim=dim, seed=seed, **shape)
    return _GENERATORS[key]


def stream_batches(ds: Dataset, k: int, sinks: Sequence[Callable[[int, np.ndarray], None]],
                   timing: MutableMapping[str, float] | None = None) -> tuple[np.ndarray, float]:
    """Feed every batch to each sink and compute the exact top-``k`` ids of every query
    (inner product); returns (ground truth (nq, k), seconds spent on ground truth).
    ``timing``, when given, also gets ``generate_s``: the seconds spent making the
    batches. One batch is held at a time."""
    import faiss

    heap = faiss.ResultHeap(len(ds.queries), k, keep_max=True)
    gt_s = gen_s = 0.0
    for start in ds.starts():
        t = time.perf_counter()
        x = ds.make_batch(start)
        gen_s += time.perf_counter() - t
        for sink in sinks:
            sink(start, x)
        t = time.perf_counter()
        d, i = faiss.knn(ds.queries, x, min(k, len(x)), metric=faiss.METRIC_INNER_PRODUCT)
        if d.shape[1] < k:  # a last batch shorter than k
            d = np.pad(d, ((0, 0), (0, k - d.shape[1])), constant_values=-np.inf)
            i = np.pad(i, ((0, 0), (0, k - i.shape[1])), constant_values=-1)
        heap.add_result(d, np.where(i >= 0, i + start, -1))
        gt_s += time.perf_counter() - t
        del x, d, i
    heap.finalize()
    if timing is not None:
        timing["generate_s"] = timing.get("generate_s", 0.0) + gen_s
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


def build_store(path: Path, settings: VectorSettings, *,
                segments_per_video: int = 50) -> tuple[VectorStore, Callable[[int, np.ndarray], None], dict]:
    """Create an empty store and a sink that adds a batch to it (ids in stream order,
    ``segments_per_video`` consecutive ids to a video, which picks the shard); the
    returned dict accumulates the add seconds (``add_s``)."""
    store = VectorStore.create(path, settings)
    timing = {"add_s": 0.0}

    def sink(start: int, x: np.ndarray) -> None:
        ids = np.arange(start, start + len(x), dtype=np.int64)
        t = time.perf_counter()
        store.add(ids, x, ids // segments_per_video)
        timing["add_s"] += time.perf_counter() - t

    return store, sink, timing


def time_queries(search_one: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, *, warmup: int,
                 repeats: int) -> tuple[dict[str, Any], np.ndarray]:
    """Warm up on the first ``warmup`` queries, then time every query one at a time
    (each a (1, dim) row), ``repeats`` times; returns (``latency_summary``, the ids of
    the last repeat)."""
    if repeats < 1:
        raise InputError(f"repeats must be at least 1, got {repeats}")
    rows = [queries[i : i + 1] for i in range(len(queries))]
    for q in rows[:warmup]:
        search_one(q)
    runs: list[list[float]] = []
    found: list[np.ndarray] = []
    for _ in range(repeats):
        lat, ids = time_each(search_one, rows)
        runs.append(lat)
        found = [r[0] for r in ids]
    return latency_summary(runs), np.stack(found)


def knob_applies(point: SweepPoint, template: str) -> bool:
    """Whether a sweep point's knobs mean anything to an index of this factory: a knob
    it has no use for (``ef_search`` without HNSW, ``nprobe`` without IVF) would only
    repeat the default row."""
    if point.ef_search is not None and "HNSW" not in template:
        return False
    return not (point.nprobe is not None and "IVF" not in template)


def search_params(point: SweepPoint, k: int) -> SearchParams:
    """The engine's per-query parameters for a sweep point."""
    return SearchParams(k=k, nprobe=point.nprobe, ef_search=point.ef_search, k_factor=point.k_factor)


def settings_dict(settings: VectorSettings) -> dict[str, Any]:
    return asdict(settings)
