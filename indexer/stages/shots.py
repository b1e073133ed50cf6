"""Shots and segments: cuts from frames sampled at ``cut_fps``, then windows of at most
``segment_max`` seconds. Feeds the reused-footage fingerprint tap when it fits, and the
other stages' taps (``Work.frame_taps``), so the video is decoded once for all of them."""
from __future__ import annotations

from indexer.stages.base import CUT_SIDE, Stage, Work


class ShotsStage(Stage):
    name = "shots"
    needs = ("info",)
    adds = ("cuts", "shots", "segments")
    at = 0.05

    def run(self, work: Work) -> None:
        from indexer import media, shots

        o, fp = work.options, work.fingerprint
        samples = media.sample_frames(work.source, fps=o.cut_fps, max_side=CUT_SIDE)
        if fp is not None and fp.fits(o.cut_fps, CUT_SIDE, fp.options):
            samples = fp.tap(samples)
        for tap in work.frame_taps:
            samples = tap.tap(samples)
        cuts = shots.detect_cuts(samples, fps=o.cut_fps)
        work.cuts = cuts
        work.shots, work.segments = shots.segment(float(work.info.duration), cuts, max_len=o.segment_max,
                                                  min_len=o.segment_min)
