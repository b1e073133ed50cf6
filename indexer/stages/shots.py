"""Shots and segments: cuts from frames sampled at ``cut_fps``, then windows of at most
``segment_max`` seconds. Feeds the reused-footage fingerprint tap when it fits, and the
other stages' taps (``Work.frame_taps``), so the video is decoded once for all of them.

The same pass measures how much of the picture decodes (``indexer.media.assess_damage``):
a damaged video (cut short, or corrupt in the middle) gets ``stats["damage"]`` and its
``info.duration`` becomes where its decodable picture ends, so the segments and every
later stage cover only what decodes."""
from __future__ import annotations

import dataclasses
import logging

from indexer.stages.base import CUT_SIDE, Stage, Work

log = logging.getLogger("vidseek.indexer")


class ShotsStage(Stage):
    name = "shots"
    needs = ("info",)
    adds = ("cuts", "shots", "segments")
    at = 0.05

    def run(self, work: Work) -> None:
        from indexer import media, shots

        o, fp = work.options, work.fingerprint
        report = media.DecodeReport()
        samples = media.sample_frames(work.source, fps=o.cut_fps, max_side=CUT_SIDE, report=report)
        if fp is not None and fp.fits(o.cut_fps, CUT_SIDE, fp.options):
            samples = fp.tap(samples)
        for tap in work.frame_taps:
            samples = tap.tap(samples)
        cuts = shots.detect_cuts(samples, fps=o.cut_fps)  # reads every sample: the report is complete
        damage = media.assess_damage(work.info, report)
        if damage is not None:
            log.warning("%s: damaged: %s", work.source, damage.reason)
            work.stats["damage"] = damage.as_dict()
            work.info = dataclasses.replace(work.info, duration=damage.decodable_end)
        duration = float(work.info.duration)
        work.cuts = [c for c in cuts if c < duration]
        work.shots, work.segments = shots.segment(duration, work.cuts, max_len=o.segment_max,
                                                  min_len=o.segment_min)
