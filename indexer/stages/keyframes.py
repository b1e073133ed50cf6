"""Keyframes: decode every segment's keyframe times once (1280 px), for the labellers."""
from __future__ import annotations

from indexer.options import IndexOptions
from indexer.stages.base import Stage, Work


class KeyframesStage(Stage):
    name = "keyframes"
    needs = ("segments",)
    adds = ("frames", "frame_time")
    at = 0.15

    @classmethod
    def enabled(cls, options: IndexOptions) -> bool:
        return options.visual or options.ocr

    def applies(self, work: Work) -> bool:
        return any(s.keyframe_times for s in work.segments)

    def run(self, work: Work) -> None:
        from indexer import media

        times = sorted({float(t) for s in work.segments for t in s.keyframe_times})
        work.frames = list(media.frames_at(work.source, times, size=1280))
        # Requested times -> the decoded frames' actual times, in order.
        work.frame_time = dict(zip(times, [t for t, _ in work.frames]))
