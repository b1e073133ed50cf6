"""How videos are analysed: the options every ingest path (CLI, service jobs, and any
later executor) passes to the stages. Kept apart so that stages, the commit path and
the executors share it without importing each other."""
from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["IndexOptions", "default_workers", "WORKER_RSS_BYTES"]

# Peak resident memory of one ingest worker with every default stage and model loaded:
# 1175 MiB, the larger of the two workers' peaks over all 71 clips of ../shared/media
# (`python -m benchmarks.bench_workers --workers 2 --limit 100 --every 0.25`: sampled
# every 0.25 s, 2026-12-06), rounded up, so that the default never pushes a machine
# into swap. Before workers stopped importing torch and sentence-transformers, which
# no default stage uses, the same measurement gave 2122 MiB; the 1.5 GiB used until
# then rounded up 1.41 GB from `/usr/bin/time -v` on two clips. docs/ingest.md,
# "Worker start-up and memory".
WORKER_RSS_BYTES = int(1.25 * 1024**3)
# What the parent process keeps for itself (catalog, vectors, graph) beside the
# workers, and the workers' fork server (150 MB resident, most of it shared with them).
PARENT_RESERVE_BYTES = 1024**3


def default_workers(cores: int | None = None, available_bytes: int | None = None) -> int:
    """Worker processes for ``vidseek index`` when ``--workers`` is not given: one per
    core this process may run on, as far as the available memory holds one worker's
    models each (``WORKER_RSS_BYTES``: each worker loads its own, see
    ``indexer.pipeline._pool_context``). On 2 cores, 8 real clips indexed at 12.5x real
    time with 2 workers against 7.2x with 1 (issue 22), so the default takes every core."""
    if cores is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cores = os.cpu_count() or 1
    if available_bytes is None:
        try:
            import psutil

            available_bytes = int(psutil.virtual_memory().available)
        except Exception:  # no psutil or no /proc: cores decide
            available_bytes = cores * (WORKER_RSS_BYTES + PARENT_RESERVE_BYTES)
    by_memory = (available_bytes - PARENT_RESERVE_BYTES) // WORKER_RSS_BYTES
    return int(max(1, min(cores, by_memory)))


@dataclass(frozen=True)
class IndexOptions:
    """How videos are analysed. Documented defaults; see README "Indexing"."""

    tenant: str = "default"
    workers: int = 1
    threads_per_worker: int | None = None  # default: cores // workers
    segment_max: float = 10.0  # long shots are split into windows of at most this
    segment_min: float = 1.5  # shorter shots merge into a neighbour
    cut_fps: float = 4.0  # frame sampling rate for shot detection
    speech: bool = True
    speech_model: str = "whisper-base"
    language: str | None = None
    ocr: bool = True
    # OCR detects text again at RapidOCR's full size (short side 736 px) instead of
    # reading the gate's 640 px boxes: finds small text (terminal, packaging) for about
    # 2.2x the OCR time (docs/ingest.md).
    ocr_small_text: bool = False
    visual: bool = True
    visual_labels: int = 5
    objects: bool = True  # COCO objects on keyframes (models: scripts/human-models-onnx.sh; absent -> warning)
    faces: bool = True  # faces: gender, age, expression, descriptor (MTCNN + FaceRes/emotion; absent -> warning)
    pose: bool = False  # actions from pose (MoveNet; opt-in: measured weak on real clips, docs/labels.md)
    picture: bool = True  # style (black and white, test pattern, cartoon, screen), scene light, colours
    max_bytes: int | None = None  # refuse files larger than this
    flush_every: int = 25  # save derived indexes every N committed videos
    graph: bool = True  # after each commit: entities, edges, reused footage (indexer.entities)
    timeline: bool = True  # phrases, text spans and 1 fps visual samples for exact moments
    # Where the models run: "auto" (a GPU where a runtime can use one), "cpu" or "cuda"
    # (engine.accel); None: the process's setting ($VIDSEEK_DEVICE, else auto).
    device: str | None = None

    def __post_init__(self) -> None:
        if self.device is not None:
            from engine.accel import check_device

            object.__setattr__(self, "device", check_device(self.device))
