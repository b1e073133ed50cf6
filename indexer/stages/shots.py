"""Shots and segments: cuts from frames sampled at ``cut_fps``, then windows of at most
``segment_max`` seconds. Feeds the reused-footage fingerprint tap when it fits."""
from __future__ import annotations

from indexer.stages.base import CUT_SIDE, Stage, Work


class ShotsStage(Stage):
    name = "shots"
    needs = ("info",)
    adds = ("cuts", "shots", "segments")
    at = 0.05

    def run(self, work: Work) -> None:
        from indexer import media, shots

        o, tap = work.options, work.fingerprint
        if tap is not None and tap.fits(o.cut_fps, CUT_SIDE, tap.options):
            samples = media.sample_frames(work.source, fps=o.cut_fps, max_side=CUT_SIDE)
            cuts = shots.detect_cuts(tap.tap(samples), fps=o.cut_fps)
        else:
            cuts = shots.detect_cuts(work.source, fps=o.cut_fps, max_side=CUT_SIDE)
        work.cuts = cuts
        work.shots, work.segments = shots.segment(float(work.info.duration), cuts, max_len=o.segment_max,
                                                  min_len=o.segment_min)
