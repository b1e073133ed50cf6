"""Scale suite: how the product's default vector store grows.

At each size of the preset a ``VectorStore`` is built with vidseek's default
settings (``shards``, ``flat_max``: shards stay exact until they pass it, then turn
into the ``auto`` approximate factory; a point may name ``compressed`` instead) over
the same seeded synthetic joint vectors, then searched one query at a time with
default parameters: p50/p90/p99 (medians over repeats), recall@10 against brute
force, build seconds, disk bytes and the process's resident memory. Beside each size
(up to ``flat_peer_max_n``) a raw FAISS ``IndexFlatIP`` over the same vectors shows
how exact search alone would grow.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from benchmarks.core import knn_recall
from benchmarks.peers import FlatPeer
from benchmarks.presets import ScaleConfig, SweepPoint
from benchmarks.suites.common import Metric, Progress, SuiteResult, latency_metrics, run_with_faiss_threads
from benchmarks.suites.vectors_common import (
    Dataset,
    build_store,
    search_params,
    store_settings,
    stream_batches,
    time_queries,
)

__all__ = ["run"]


def _rss_bytes() -> int | None:
    try:
        import psutil
    except ImportError:  # recorded as unknown; psutil is a core dependency, so rare
        return None
    return int(psutil.Process().memory_info().rss)


def run(cfg: ScaleConfig, work_dir: Path, progress: Progress | None = None) -> SuiteResult:
    """Build and time the store at every size of ``cfg.points``.

    FAISS runs on ``cfg.threads`` OpenMP threads (``None``: its default) for the suite."""
    return run_with_faiss_threads(_run, cfg, work_dir, progress)


def _run(cfg: ScaleConfig, work_dir: Path, progress: Progress | None) -> SuiteResult:
    say = progress or (lambda s: None)
    t_start = time.perf_counter()
    work_dir.mkdir(parents=True, exist_ok=True)
    metrics: list[Metric] = []
    rows: list[dict[str, Any]] = []
    sp = search_params(SweepPoint(), cfg.k)
    for point in cfg.points:
        ds = Dataset.make(point.n, cfg.dim, cfg.queries, seed=cfg.seed, batch=cfg.batch)
        settings = store_settings(cfg.dim, point.factory, n=point.n,
                                  shards=cfg.shards, flat_max=cfg.flat_max, train_sample=cfg.train_sample)
        path = work_dir / f"scale-{point.n}"
        if path.exists():
            shutil.rmtree(path)
        say(f"scale: building {point.n:,} x {cfg.dim} ({point.factory}, {cfg.shards} shards)")
        rss0 = _rss_bytes()
        store, sink, timing = build_store(path, settings)
        flat = FlatPeer(cfg.dim) if point.n <= cfg.flat_peer_max_n else None
        try:
            sinks = [sink] + ([lambda start, x: flat.add(x)] if flat is not None else [])
            t = time.perf_counter()
            truth, gt_s = stream_batches(ds, cfg.k, sinks)
            build_s = time.perf_counter() - t - gt_s
            store.save(1)
            info = store.info()
            rss = _rss_bytes()
            lat, found = time_queries(lambda q: store.search(q, sp)[1], ds.queries,
                                      warmup=cfg.warmup, repeats=cfg.repeats)
            recall = knn_recall(found, truth)
            kinds = sorted({s["kind"] for s in info["shards"]})
            factories = sorted({s["factory"] for s in info["shards"]})
            row: dict[str, Any] = {
                "n": point.n, "system": "vidseek", "factory": point.factory, "shard_kinds": kinds,
                "shard_factories": factories, "recall_at_10": round(recall, 4), **lat,
                "build_s": round(build_s, 3), "disk_bytes": info["disk_bytes"],
                "rss_growth_bytes": (rss - rss0) if rss is not None and rss0 is not None else None,
            }
            rows.append(row)
            base = f"scale/{point.n}"
            metrics.append(Metric(f"{base}/recall_at_10", round(recall, 4), "higher"))
            metrics.extend(latency_metrics(base, lat))
            metrics.append(Metric(f"{base}/build_s", round(build_s, 3), "lower", "s"))
            say(f"scale: {point.n:,}: recall@10 {recall:.3f}, p50 {lat['p50_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms "
                f"({'/'.join(kinds)})")
            if flat is not None:
                flat_lat, flat_found = time_queries(lambda q: flat.search(q, cfg.k)[1], ds.queries,
                                                    warmup=cfg.warmup, repeats=cfg.repeats)
                rows.append({"n": point.n, "system": "faiss-flat", "factory": "IndexFlatIP",
                             "recall_at_10": round(knn_recall(flat_found, truth), 4), **flat_lat})
                metrics.extend(latency_metrics(f"{base}/faiss-flat", flat_lat, ("p50",)))
        finally:
            store.close()
            shutil.rmtree(path, ignore_errors=True)
    config = {
        "points": [{"n": p.n, "factory": p.factory} for p in cfg.points], "dim": cfg.dim,
        "queries": cfg.queries, "warmup": cfg.warmup, "repeats": cfg.repeats, "shards": cfg.shards,
        "flat_max": cfg.flat_max, "train_sample": cfg.train_sample, "k": cfg.k, "seed": cfg.seed,
        "search_params": "defaults (SearchParams(k=10))",
        "data": "benchmarks.synthetic.SyntheticJoint (clustered 384-d blocks, 20% missing)",
    }
    return SuiteResult("scale", config, metrics, {"rows": rows}, time.perf_counter() - t_start)
