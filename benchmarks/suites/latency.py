"""Latency suite: the ANN trade-off curve (recall@10 against single-query latency) of
each index configuration, with raw FAISS beside the engine.

For each ``IndexSpec`` of the preset a ``VectorStore`` is built over the same seeded
synthetic joint vectors and swept over its knob (``nprobe`` or ``ef_search``). At
each point: recall@10 against exact brute force, and p50/p90/p99 of one-query
searches (warm-up first, then ``repeats`` passes over the same queries; medians over
repeats, [min, max] as the spread).

Peers, on the same vectors and queries: ``faiss-flat`` (one raw ``IndexFlatIP``,
exact) and ``faiss-raw`` (the FAISS indexes the store saved, read back and searched
directly with the same resolved parameters). With the default single shard the raw
index *is* the store's index, so the latency gap is the engine's overhead.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.core import knn_recall
from benchmarks.peers import FlatPeer, RawShardsPeer, raw_search_params
from benchmarks.presets import IndexSpec, LatencyConfig, SweepPoint
from benchmarks.suites.common import Metric, Progress, SuiteResult, latency_metrics, run_with_faiss_threads
from benchmarks.suites.vectors_common import (
    Dataset,
    build_store,
    knob_applies,
    search_params,
    settings_dict,
    store_settings,
    stream_batches,
    time_queries,
)
from engine.vectors import SearchDefaults

__all__ = ["run"]


def _raw_params(peer: RawShardsPeer, defaults: SearchDefaults, point: SweepPoint, k: int) -> list[Any]:
    """Per-shard FAISS parameters equal to what the engine resolves for ``point``."""
    out = []
    for idx, nlist, tuned in zip(peer.indexes, peer.nlists(), peer.tuned):
        shard_defaults = defaults.tuned(tuned)  # the shard's tuned values, as the store applies them
        nprobe = point.nprobe or (shard_defaults.nprobe_for(nlist) if nlist else None)
        out.append(raw_search_params(idx, k, nprobe=nprobe, ef_search=point.ef_search or shard_defaults.ef_search,
                                     k_factor=point.k_factor or shard_defaults.k_factor))
    return out


def _applies(spec: IndexSpec, point: SweepPoint, template: str) -> bool:
    """A knob the index has no use for would only repeat the default row."""
    return knob_applies(point, template) and not (spec.factory == "Flat" and point != SweepPoint())


def run(cfg: LatencyConfig, work_dir: Path, progress: Progress | None = None) -> SuiteResult:
    """Build every configuration, sweep it, and time the peers beside it.

    FAISS runs on ``cfg.threads`` OpenMP threads (``None``: its default) for the suite."""
    return run_with_faiss_threads(_run, cfg, work_dir, progress)


def _run(cfg: LatencyConfig, work_dir: Path, progress: Progress | None) -> SuiteResult:
    say = progress or (lambda s: None)
    t_start = time.perf_counter()
    work_dir.mkdir(parents=True, exist_ok=True)
    ds = Dataset.make(cfg.n, cfg.dim, cfg.queries, seed=cfg.seed, batch=cfg.batch)
    metrics: list[Metric] = []
    configs: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    truth: np.ndarray | None = None
    flat_peer = FlatPeer(cfg.dim) if cfg.peers else None
    gt_seconds = 0.0

    for spec in cfg.indexes:
        settings = store_settings(cfg.dim, spec.factory, n=cfg.n, shards=cfg.shards, flat_max=cfg.flat_max,
                                  train_sample=spec.train_sample or cfg.train_sample)
        path = work_dir / f"latency-{spec.name}"
        if path.exists():
            shutil.rmtree(path)  # our own scratch folder from an earlier, interrupted run
        say(f"latency: building {spec.name} ({settings.approx_factory if spec.factory != 'Flat' else 'Flat'}) "
            f"over {cfg.n:,} x {cfg.dim}")
        store, sink, timing = build_store(path, settings)
        try:
            sinks = [sink]
            if truth is None and flat_peer is not None:
                sinks.append(lambda start, x: flat_peer.add(x))
            t = time.perf_counter()
            got_truth, gt_s = stream_batches(ds, cfg.k, sinks)
            build_s = time.perf_counter() - t - gt_s
            if truth is None:
                truth, gt_seconds = got_truth, gt_s
            t = time.perf_counter()
            store.save(1)
            save_s = time.perf_counter() - t
            info = store.info()
            template = info["shards"][0]["factory"] if info["shards"] else settings.approx_factory
            configs.append({
                "name": spec.name,
                "factory": spec.factory,
                "settings": settings_dict(settings),
                "shards": [{key: s[key] for key in ("shard", "kind", "factory", "count", "nlist", "trained_n")}
                           for s in info["shards"]],
                "build_s": round(build_s, 3),
                "add_s": round(timing["add_s"], 3),
                "save_s": round(save_s, 3),
                "disk_bytes": info["disk_bytes"],
            })
            metrics.append(Metric(f"latency/{spec.name}/build_s", round(build_s, 3), "lower", "s"))
            metrics.append(Metric(f"latency/{spec.name}/disk_bytes_per_vector",
                                  round(info["disk_bytes"] / cfg.n, 1), "lower", "B"))
            # Raw FAISS cannot apply an on-disk refine stage (engine/vectors/vecfile.py).
            raw = RawShardsPeer(path) if cfg.peers and "@disk" not in settings.approx_factory else None
            defaults = SearchDefaults.from_settings(settings)
            for point in spec.sweep:
                if not _applies(spec, point, template):
                    continue
                sp = search_params(point, cfg.k)
                lat, found = time_queries(lambda q: store.search(q, sp)[1], ds.queries,
                                          warmup=cfg.warmup, repeats=cfg.repeats)
                recall = knn_recall(found, truth)
                row = {"config": spec.name, "system": "vidseek", "params": point.label(),
                       "recall_at_10": round(recall, 4), **lat}
                rows.append(row)
                base = f"latency/{spec.name}/{point.label()}"
                metrics.append(Metric(f"{base}/recall_at_10", round(recall, 4), "higher"))
                metrics.extend(latency_metrics(base, lat))
                if raw is not None:
                    rp = _raw_params(raw, defaults, point, cfg.k)
                    rlat, rfound = time_queries(lambda q: raw.search(q, cfg.k, rp)[1], ds.queries,
                                                warmup=cfg.warmup, repeats=cfg.repeats)
                    rrecall = knn_recall(rfound, truth)
                    rows.append({"config": spec.name, "system": "faiss-raw", "params": point.label(),
                                 "recall_at_10": round(rrecall, 4), **rlat})
                    metrics.append(Metric(f"{base}/faiss-raw/recall_at_10", round(rrecall, 4), "higher"))
                    metrics.extend(latency_metrics(f"{base}/faiss-raw", rlat, ("p50",)))
                    overhead = lat["p50_ms"] - rlat["p50_ms"]
                    row["overhead_p50_ms"] = round(overhead, 4)
                say(f"latency: {spec.name} {point.label()}: recall@10 {recall:.3f}, p50 {lat['p50_ms']:.2f} ms")
        finally:
            store.close()
            shutil.rmtree(path, ignore_errors=True)

    if flat_peer is not None and truth is not None:
        lat, found = time_queries(lambda q: flat_peer.search(q, cfg.k)[1], ds.queries,
                                  warmup=cfg.warmup, repeats=cfg.repeats)
        recall = knn_recall(found, truth)
        rows.append({"config": "faiss-flat", "system": "faiss-flat", "params": "exact",
                     "recall_at_10": round(recall, 4), **lat})
        metrics.append(Metric("latency/faiss-flat/recall_at_10", round(recall, 4), "higher"))
        metrics.extend(latency_metrics("latency/faiss-flat", lat))

    config = {
        "n": cfg.n, "dim": cfg.dim, "queries": cfg.queries, "warmup": cfg.warmup, "repeats": cfg.repeats,
        "shards": cfg.shards, "k": cfg.k, "peers": cfg.peers, "seed": cfg.seed,
        "data": "benchmarks.synthetic.SyntheticJoint (clustered 384-d blocks, 20% missing)",
        "indexes": configs,
        "ground_truth_s": round(gt_seconds, 3),
    }
    return SuiteResult("latency", config, metrics, {"rows": rows}, time.perf_counter() - t_start)
