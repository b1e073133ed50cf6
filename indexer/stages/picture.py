"""Picture: style (black and white, test pattern, cartoon, screen capture), scene light
(dark) and dominant colours of each keyframe, from image statistics
(``indexer.picture``). Runs after OCR, whose lines tell a screen capture.

Black and white is a property of the footage, not of one frame: a tap on the cut
detector's samples (``GreyTap``, about 2 per second) keeps each sample's grey score, and
a keyframe whose shot shows colour elsewhere (``indexer.picture.colour_seen``) is not
called black and white (a grey blizzard in a colour film)."""
from __future__ import annotations

import bisect
from typing import Iterable, Iterator

import numpy as np

from indexer.options import IndexOptions
from indexer.stages.base import Stage, Work

__all__ = ["PictureStage", "GreyTap"]


class GreyTap:
    """Keeps ``indexer.picture.greyscale_or_none`` of every ``every``-th cut sample."""

    def __init__(self, every: int = 2) -> None:
        self.every = every
        self.times: list[float] = []
        self.scores: list[float | None] = []

    def tap(self, samples: Iterable[tuple[float, np.ndarray]]) -> Iterator[tuple[float, np.ndarray]]:
        from indexer.picture import greyscale_or_none

        for i, (t, frame) in enumerate(samples):
            if i % self.every == 0:
                self.times.append(float(t))
                self.scores.append(greyscale_or_none(frame))
            yield t, frame

    def in_colour(self, start: float, end: float) -> bool:
        """Whether the samples in [start, end) show colour (``colour_seen``)."""
        from indexer.picture import colour_seen

        lo, hi = bisect.bisect_left(self.times, start), bisect.bisect_left(self.times, end)
        return colour_seen(self.scores[lo:hi])


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

    def prepare(self, work: Work) -> None:
        work.frame_taps.append(GreyTap())

    def run(self, work: Work) -> None:
        from indexer.picture import picture_labels

        grey = work.tap(GreyTap)
        for t, rgb in work.frames:
            lines = len(work.keyframe_lines.get(t, []))
            shot = next((s for s in work.shots if s.start <= t < s.end), None)
            in_colour = grey is not None and shot is not None and grey.in_colour(shot.start, shot.end)
            work.frame_labels.setdefault(t, []).extend(
                (kind, label, score, None)
                for kind, label, score in picture_labels(rgb, lines, shot_in_colour=in_colour))
