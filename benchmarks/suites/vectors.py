"""One vector store, built and swept: what ``python -m benchmarks.bench_vectors``
measures (the 1M and 10M points of the README and docs/vectors.md).

A ``VectorStore`` is built over synthetic joint vectors (``benchmarks.synthetic.
SyntheticJoint``, streamed in seeded batches through ``vectors_common.stream_batches``
with the exact ground truth folded in as they come), saved, and searched at every
point of a sweep: recall@10 against brute force, p50/p99/mean of one-query searches
after a warm-up (``vectors_common.time_queries``), batch throughput, and optionally the
same pass with an emptied page cache first (``cold``). Beside that: build seconds
(generation, add, ground truth, save), peak and before/after RSS, disk bytes, and the
memory a server needs to open the saved store (a fresh read-only process).

Unlike the latency and scale suites this is one configuration at a time, at any size,
with every generator and store knob exposed; the result keeps the layout that the
published numbers were read from.
"""
from __future__ import annotations

import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks.core import knn_recall, now_iso
from benchmarks.machine import vector_machine_info
from benchmarks.presets import SweepPoint
from benchmarks.suites.vectors_common import (
    Dataset,
    build_store,
    knob_applies,
    search_params,
    settings_dict,
    stream_batches,
    time_queries,
)
from engine.errors import InputError
from engine.vectors import VectorSettings, auto_factory, compressed_factory

__all__ = ["VectorsConfig", "DEFAULT_SWEEP", "parse_sweep", "run"]

DEFAULT_SWEEP = (
    "default;nprobe=32;nprobe=64;nprobe=128;nprobe=256;nprobe=384;nprobe=512;nprobe=768;"
    "nprobe=256,k_factor=4;nprobe=256,k_factor=16;ef_search=64;ef_search=128;ef_search=256"
)
K = 10
_KNOBS = ("nprobe", "ef_search", "k_factor")


def parse_sweep(text: str) -> tuple[SweepPoint, ...]:
    """``"default;nprobe=32,k_factor=8;ef_search=64"`` -> sweep points (unknown keys and
    non-integer values raise ``InputError``)."""
    out = []
    for item in filter(None, (s.strip() for s in text.split(";"))):
        if item == "default":
            out.append(SweepPoint())
            continue
        kv = {}
        for pair in item.split(","):
            key, _, value = pair.partition("=")
            if key.strip() not in _KNOBS or not value.strip().isdigit():
                raise InputError(f"bad --params item {pair!r}: use {sorted(_KNOBS)} with integer values")
            kv[key.strip()] = int(value)
        out.append(SweepPoint(**kv))
    return tuple(out)


def _default_settings() -> VectorSettings:
    return VectorSettings(dim=1)


@dataclass(frozen=True)
class VectorsConfig:
    """What to build and how to sweep it (``bench_vectors --help`` says each)."""

    n: int = 1_000_000
    dim: int = 1536
    queries: int = 1000
    shards: int = 4
    flat_max: int = field(default_factory=lambda: _default_settings().flat_max)
    train_sample: int = field(default_factory=lambda: _default_settings().train_sample)
    factory: str | None = None  # None: "auto", or compressed_factory(dim) with ``compressed``
    compressed: bool = False
    sweep: tuple[SweepPoint, ...] = field(default_factory=lambda: parse_sweep(DEFAULT_SWEEP))
    use_gpu: str = "auto"
    batch: int = 100_000
    clusters: int = 1000
    noise: float = 1.0
    decay: float = 0.5
    p_missing: float = 0.2
    segments_per_video: int = 50
    seed: int = 0
    warmup: int = 20
    cold: bool = False
    threads: int = 0  # FAISS OpenMP threads; 0: FAISS's default
    index_dir: str | None = None  # build here (must be empty) and keep it
    tmp: str | None = None  # parent folder of the temporary index
    keep: bool = False

    def factory_name(self) -> str:
        return self.factory or (compressed_factory(self.dim) if self.compressed else "auto")


def _peak_rss_bytes() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def _rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def _serving_rss(index_dir: Path) -> dict:
    """Open the saved store read-only in a fresh process: the memory a server would need."""
    code = (
        "import json,time,psutil,os;from engine.vectors import VectorStore;"
        "b=psutil.Process().memory_info().rss;t=time.perf_counter();"
        f"s=VectorStore.open({str(index_dir)!r},read_only=True);"
        "print(json.dumps({'open_s':time.perf_counter()-t,'rss_bytes':psutil.Process().memory_info().rss,"
        "'rss_before_open_bytes':b,'count':s.count()}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _drop_page_cache() -> None:
    """Empty the kernel's page cache (root only) so the next reads come from disk."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("1\n")
    except OSError as e:
        raise InputError(f"--cold needs to write /proc/sys/vm/drop_caches (root): {e}") from e


def _sweep_row(store: Any, point: SweepPoint, queries: np.ndarray, truth: np.ndarray,
               cfg: VectorsConfig) -> dict[str, Any]:
    """One sweep point: recall, warm (and cold) one-query latency, batch throughput."""
    params = search_params(point, K)

    def search_one(q: np.ndarray) -> np.ndarray:
        return store.search(q, params)[1]

    cold = {}
    if cfg.cold:
        # First pass with an empty page cache (no warm-up: it would read the same
        # rows); the warm pass below then repeats the same queries.
        _drop_page_cache()
        cold_lat, _ = time_queries(search_one, queries, warmup=0, repeats=1)
        cold = {f"cold_{m}_ms": round(cold_lat[f"{m}_ms"], 3) for m in ("p50", "p99", "mean")}
    lat, found = time_queries(search_one, queries, warmup=0 if cfg.cold else cfg.warmup, repeats=1)
    t = time.perf_counter()
    store.search(queries, params)
    batch_s = time.perf_counter() - t
    return {
        "params": point.label(),
        **asdict(point),
        "recall_at_10": round(knn_recall(found, truth), 4),
        **{f"{m}_ms": round(lat[f"{m}_ms"], 3) for m in ("p50", "p99", "mean")},
        "batch_qps": round(len(queries) / batch_s, 1),
        **cold,
    }


def run(cfg: VectorsConfig, *, command: str = "", progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Build, measure and return the report (``command`` is recorded as given;
    ``progress`` gets a line per batch added)."""
    import faiss

    if cfg.threads:
        faiss.omp_set_num_threads(cfg.threads)
    factory = cfg.factory_name()
    settings = VectorSettings(
        dim=cfg.dim,
        num_shards=cfg.shards,
        flat_max=cfg.flat_max,
        approx_factory=factory,
        train_sample=cfg.train_sample,
        use_gpu=cfg.use_gpu,
    )
    ds = Dataset.make(cfg.n, cfg.dim, cfg.queries, seed=cfg.seed, batch=cfg.batch, clusters=cfg.clusters,
                      noise=cfg.noise, decay=cfg.decay, p_missing=cfg.p_missing)
    own_dir = cfg.index_dir is None
    index_dir = Path(cfg.index_dir or tempfile.mkdtemp(prefix="bench-vectors-", dir=cfg.tmp))
    if index_dir.exists() and any(index_dir.iterdir()):
        raise InputError(f"--index-dir {index_dir} is not empty")
    rss0 = _rss_bytes()
    times: dict[str, float] = {"generate_s": 0.0}
    store, sink, add_timing = build_store(index_dir, settings, segments_per_video=cfg.segments_per_video)
    try:
        sinks = [sink]
        if progress is not None:
            sinks.append(lambda start, x: progress(f"  {start + len(x):>10,d} vectors  add {add_timing['add_s']:.1f}s"))
        truth, gt_s = stream_batches(ds, K, sinks, timing=times)
        times["add_s"] = add_timing["add_s"]
        times["ground_truth_s"] = gt_s
        t = time.perf_counter()
        store.save(1)
        times["save_s"] = time.perf_counter() - t
        gc.collect()
        rss_built = _rss_bytes()
        info = store.info()

        template = auto_factory(cfg.dim) if factory == "auto" else factory
        # A knob the factory has no use for would only repeat the default row.
        rows = [_sweep_row(store, point, ds.queries, truth, cfg) for point in cfg.sweep
                if knob_applies(point, template)]
    finally:
        store.close()
    serving = _serving_rss(index_dir)
    disk = _disk_bytes(index_dir)
    report = {
        "benchmark": "vectors",
        "when": now_iso(),
        "command": command,
        "machine": vector_machine_info(),
        "data": {
            "generator": "SyntheticJoint",
            "n": cfg.n,
            "dim": cfg.dim,
            "queries": cfg.queries,
            "clusters": cfg.clusters,
            "noise": cfg.noise,
            "decay": cfg.decay,
            "p_missing": cfg.p_missing,
            "seed": cfg.seed,
            "segments_per_video": cfg.segments_per_video,
        },
        "settings": settings_dict(settings),
        "factory_template": template,
        "shards": [{k2: s[k2] for k2 in ("shard", "kind", "factory", "count", "nlist", "trained_n")} for s in info["shards"]],
        "build": {
            **{key: round(times[key], 3) for key in ("generate_s", "add_s", "ground_truth_s", "save_s")},
            "add_vectors_per_s": round(cfg.n / max(times["add_s"], 1e-9), 1),
            "peak_rss_bytes": _peak_rss_bytes(),
            "rss_before_build_bytes": rss0,
            "rss_after_build_bytes": rss_built,
            "disk_bytes": disk,
            "disk_bytes_per_vector": round(disk / max(cfg.n, 1), 1),
        },
        "serving": serving,
        "results": rows,
    }
    if own_dir and not cfg.keep:
        shutil.rmtree(index_dir, ignore_errors=False)
    else:
        report["index_dir"] = str(index_dir)
    return report
