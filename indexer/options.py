"""How videos are analysed: the options every ingest path (CLI, service jobs, and any
later executor) passes to the stages. Kept apart so that stages, the commit path and
the executors share it without importing each other."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["IndexOptions"]


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
    visual: bool = True
    visual_labels: int = 5
    objects: bool = True  # COCO objects on keyframes (models: scripts/human-models-onnx.sh; absent -> warning)
    faces: bool = True  # faces: gender, age, expression, descriptor (MTCNN + FaceRes/emotion; absent -> warning)
    picture: bool = True  # style (black and white, test pattern, cartoon, screen), scene light, colours
    max_bytes: int | None = None  # refuse files larger than this
    flush_every: int = 25  # save derived indexes every N committed videos
    graph: bool = True  # after each commit: entities, edges, reused footage (indexer.entities)
    timeline: bool = True  # phrases, text spans and 1 fps visual samples for exact moments
