"""Picture: style (black and white, test pattern, cartoon, screen capture), scene light
(dark) and dominant colours of each keyframe, from image statistics
(``indexer.picture``). Runs after OCR, whose lines tell a screen capture."""
from __future__ import annotations

from indexer.options import IndexOptions
from indexer.stages.base import Stage, Work

__all__ = ["PictureStage"]


class PictureStage(Stage):
    name = "picture"
    needs = ("frames",)
    adds = ("frame_labels",)
    at = 0.6

    @classmethod
    def enabled(cls, options: IndexOptions) -> bool:
        return options.visual and options.picture

    def applies(self, work: Work) -> bool:
        return bool(work.frames)

    def run(self, work: Work) -> None:
        from indexer.picture import picture_labels

        for t, rgb in work.frames:
            lines = len(work.keyframe_lines.get(t, []))
            work.frame_labels.setdefault(t, []).extend(
                (kind, label, score, None) for kind, label, score in picture_labels(rgb, lines))
