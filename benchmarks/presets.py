"""Benchmark presets: how big each suite runs.

``ci`` is the tiny setting the tests use (seconds to a minute, no shared media
needed); ``small`` finishes in a few minutes on 2 cores; ``medium`` is the full
judged query set and 100k-300k vectors; ``large`` is the 1M / 10M runs (hours and
tens of GB: a dedicated machine).

``ci`` and ``small`` run FAISS on one OpenMP thread (``threads=1``): on a shared
2-core machine a team of two spins against the other processes, and training the
compressed layout's former PQ refine stage took 4-8x longer with 2 threads than with 1
(measured at load average 6). Single-query search is single-threaded in FAISS
either way, so the latency curves do not depend on it; build seconds do.

Index configurations of the latency suite (the ANN trade-off curve):

- ``flat``: exact search (every shard ``IndexFlatIP``), the ceiling of recall;
- ``ivfpq-fs-refine``: vidseek's ``auto`` factory at embedding dims, IVF + 4-bit
  fast-scan PQ + a float16 refine stage (sweep ``nprobe``);
- ``hnsw``: ``HNSW32,Flat`` (sweep ``ef_search``);
- ``compressed``: ``engine.vectors.compressed_factory``, the memory-lean layout of the
  10M point (fast-scan PQ in RAM + the float16 refine rows on disk; sweep ``nprobe``).
  Raw FAISS cannot read its refine file, so it has no ``faiss-raw`` peer.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from engine.errors import InputError, UnknownNameError

__all__ = [
    "SweepPoint",
    "IndexSpec",
    "QualityConfig",
    "LatencyConfig",
    "ScalePoint",
    "ScaleConfig",
    "IngestConfig",
    "Preset",
    "PRESETS",
    "SUITES",
    "get_preset",
]

SUITES: tuple[str, ...] = ("quality", "latency", "scale", "ingest")
FACTORIES = ("Flat", "auto", "compressed")  # besides any FAISS factory string


@dataclass(frozen=True)
class SweepPoint:
    """One search setting of a sweep; ``None`` fields take the store's default."""

    nprobe: int | None = None
    ef_search: int | None = None
    k_factor: int | None = None

    def label(self) -> str:
        """``"nprobe=16"``, ``"ef_search=64,k_factor=4"``, or ``"default"``."""
        return ",".join(f"{k}={v}" for k, v in asdict(self).items() if v is not None) or "default"


DEFAULT = SweepPoint()


@dataclass(frozen=True)
class IndexSpec:
    """One index configuration of the latency suite.

    ``factory`` is ``"Flat"`` (shards stay exact), ``"auto"`` (vidseek's default
    approximate factory), ``"compressed"`` (``compressed_factory``) or a FAISS factory
    string (``"HNSW32,Flat"``; ``{nlist}`` is filled from the shard size).
    ``train_sample`` caps the vectors a shard trains on (``None``: the suite's
    default); small presets cap the compressed layout's to keep its training short."""

    name: str
    factory: str
    sweep: tuple[SweepPoint, ...] = (DEFAULT,)
    train_sample: int | None = None

    def __post_init__(self) -> None:
        if not self.sweep:
            raise InputError(f"index spec {self.name!r} has an empty sweep", hint="give at least SweepPoint()")


@dataclass(frozen=True)
class QualityConfig:
    """Quality suite: which clips, which methods, which peers.

    ``max_clips`` / ``max_media_seconds`` pick a subset of the judged clips (the
    queries whose relevant clips are cheapest to index, a few of each kind, and every
    negative query); ``None`` takes every clip. ``methods`` are names from
    ``benchmarks.suites.judged.METHODS`` (``None``: all)."""

    max_clips: int | None = None
    max_media_seconds: float | None = None
    methods: tuple[str, ...] | None = None
    peers: tuple[str, ...] = ("rank-bm25", "txtai-hybrid")
    workers: int = 2


@dataclass(frozen=True)
class LatencyConfig:
    """Latency suite: ``n`` synthetic joint vectors of ``dim`` (``benchmarks.synthetic``'s
    generator), ``queries`` single-query searches per repeat after ``warmup``."""

    n: int
    dim: int = 1536
    queries: int = 200
    warmup: int = 20
    repeats: int = 3
    shards: int = 1  # one shard: the engine and raw FAISS then search the very same index
    flat_max: int = 1  # approximate configs turn approximate at once
    train_sample: int = 100_000
    indexes: tuple[IndexSpec, ...] = ()
    peers: bool = True
    k: int = 10
    batch: int = 100_000
    seed: int = 0
    threads: int | None = None  # FAISS OpenMP threads for the suite (None: FAISS's default)


@dataclass(frozen=True)
class ScalePoint:
    """One size of the scale suite and the factory it is built with."""

    n: int
    factory: str = "auto"


@dataclass(frozen=True)
class ScaleConfig:
    """Scale suite: the product's default store settings at growing sizes."""

    points: tuple[ScalePoint, ...]
    dim: int = 1536
    queries: int = 100
    warmup: int = 10
    repeats: int = 3
    shards: int = 4
    flat_max: int = 20_000
    train_sample: int = 100_000
    flat_peer_max_n: int = 2_000_000  # raw IndexFlatIP beside each size up to this many vectors
    k: int = 10
    batch: int = 100_000
    seed: int = 0
    threads: int | None = None  # FAISS OpenMP threads for the suite (None: FAISS's default)


@dataclass(frozen=True)
class IngestConfig:
    """Ingest suite: the ``clips`` shortest clips (at most ``max_clip_seconds`` each),
    indexed ``repeats`` times into fresh indexes after a warm-up that loads the models."""

    clips: int = 3
    max_clip_seconds: float = 12.0
    repeats: int = 2
    warmup: bool = True
    workers: int = 1


@dataclass(frozen=True)
class Preset:
    """A named size for every suite."""

    name: str
    description: str
    quality: QualityConfig
    latency: LatencyConfig
    scale: ScaleConfig
    ingest: IngestConfig = field(default_factory=IngestConfig)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sweep(key: str, values: tuple[int, ...], with_default: bool = True) -> tuple[SweepPoint, ...]:
    pts = tuple(SweepPoint(**{key: v}) for v in values)
    return ((DEFAULT,) if with_default else ()) + pts


def _indexes(nprobes: tuple[int, ...], efs: tuple[int, ...], compressed_nprobes: tuple[int, ...],
             compressed_train: int | None) -> tuple[IndexSpec, ...]:
    return (
        IndexSpec("flat", "Flat"),
        IndexSpec("ivfpq-fs-refine", "auto", _sweep("nprobe", nprobes)),
        IndexSpec("hnsw", "HNSW32,Flat", _sweep("ef_search", efs)),
        IndexSpec("compressed", "compressed", _sweep("nprobe", compressed_nprobes), compressed_train),
    )


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "ci",
            "tiny: 3 clips, a few thousand 384-d vectors, one ingest clip (tests)",
            QualityConfig(max_clips=3, max_media_seconds=30.0, methods=("bm25", "dense", "default"), workers=1),
            LatencyConfig(n=3000, dim=384, queries=40, warmup=5, repeats=2, threads=1,
                          indexes=_indexes((2, 8), (16, 64), (8,), 1000)),
            ScaleConfig(points=(ScalePoint(1000), ScalePoint(3000)), dim=384, queries=30, warmup=5, repeats=2,
                        shards=2, flat_max=1000, threads=1),
            IngestConfig(clips=1, repeats=1, warmup=False),
        ),
        Preset(
            "small",
            "a few minutes on 2 cores: ~8 short judged clips, 20k vectors, 10k-50k growth, 3 ingest clips",
            QualityConfig(max_clips=8, max_media_seconds=90.0, methods=("bm25", "dense", "default")),
            LatencyConfig(n=20_000, queries=200, warmup=20, repeats=3, threads=1,
                          indexes=_indexes((2, 4, 8, 16, 32, 64), (16, 32, 64, 128), (4, 16, 64), 2560)),
            ScaleConfig(points=(ScalePoint(10_000), ScalePoint(25_000), ScalePoint(50_000)), queries=100,
                        repeats=3, threads=1),
            IngestConfig(clips=3, repeats=2),
        ),
        Preset(
            "medium",
            "every judged clip and method, 100k vectors, 50k-300k growth (an hour on 2 cores; "
            "pass --quality-index to reuse a built index)",
            QualityConfig(),
            LatencyConfig(n=100_000, queries=500, warmup=50, repeats=3, shards=4,
                          indexes=_indexes((8, 16, 32, 64, 128, 256), (32, 64, 128, 256), (16, 64, 256), 30_000)),
            ScaleConfig(points=(ScalePoint(50_000), ScalePoint(100_000), ScalePoint(300_000)), queries=200),
            IngestConfig(clips=10, max_clip_seconds=40.0, repeats=2),
        ),
        Preset(
            "large",
            "the 1M and 10M runs: a dedicated machine with >= 64 GB RAM and hours",
            QualityConfig(),
            LatencyConfig(n=1_000_000, queries=1000, warmup=100, repeats=3, shards=4,
                          indexes=_indexes((32, 64, 128, 256, 384, 512), (64, 128, 256), (64, 256, 512), None)[1:]),
            ScaleConfig(points=(ScalePoint(100_000), ScalePoint(1_000_000), ScalePoint(10_000_000, "compressed")),
                        queries=1000, warmup=100, flat_peer_max_n=1_000_000),
            IngestConfig(clips=1000, max_clip_seconds=1e9, repeats=1, workers=2),
        ),
    )
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ``UnknownNameError`` lists the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownNameError("preset", name, list(PRESETS)) from None
