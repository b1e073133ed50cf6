"""Text follow-up: read the screen again where the cheap tracker saw on-screen text change.

OCR reads keyframes only (1-3 a segment). Between them, subtitles change, a running
timecode ticks, a title card ends, and the timeline's text spans
(``indexer.stages.timeline``) can only tell that a text box's part of the screen
changed (the cut detector's 64x36 thumbnails, ``ScreenTap``), not what it says now,
nor whether a subtitle over moving video is still there. Where a line read on a
keyframe stops being tracked inside its shot, this stage decodes the frame just after
(or, at its start, just before) and reads the band of rows the line's box covered:
through the OCR gate, recognising the gate's boxes (``indexer.ocr``). What it reads
becomes text lines at those times (``Work.followup_lines``) for the timeline's text
spans only: added to the segments' on-screen text (BM25 and the OCR vector), the extra
reads moved written on-screen text queries both ways and lowered their MRR (0.871 ->
0.806, docs/moments.md). A new line is followed in turn, up to ``MAX_READS`` reads a
video. A small video's band that the gate reads nothing in is read again scaled up
(``FOLLOW_SIDE``). Where two different lines were read in one place and the tracker
cannot tell when one became the other, the reads left halve the time between them
(``split_times``); the bands each follow-up read are kept (``Work.followup_bands``): what
it did not find in them was not on screen then (``timeline.text_spans``).

A video's opening is read too when its first keyframe is more than ``OPENING_GAP`` in:
a title card shown for the first second or two falls before any keyframe (keyframes sit
inside their segments), and nothing else would read it. Its lines that no keyframe read
are the first segment's on-screen text as well (``Work.opening_text``).
"""
from __future__ import annotations

import itertools
import logging

from engine.errors import MediaError
from indexer.options import IndexOptions
from indexer.stages.base import Stage, Work

__all__ = ["TextFollowStage", "MAX_READS", "follow_times", "split_times", "opening_time"]

log = logging.getLogger("vidseek.indexer")

MAX_READS = 8  # extra frames read a video, at most
NEAR = 0.4  # s: a wanted time this close to a frame already read is not read again
SPLIT = 0.5  # s: two different lines read in one place further apart than this are split
FOLLOW_SIDE = 640  # px: a follow-up band smaller than this is read again scaled up to it (det-640's side)
OPENING = 0.5  # s: where a video's opening is read (past a fade-in's first black frames)
# s: ... when its first keyframe is at least this far in. A title card stays a second and a
# half or more, so a keyframe sooner than that reads it; on ../shared/media the first
# keyframes fall between 0.9 and 2.0 s, and half of the videos get this read.
OPENING_GAP = 1.5
# The opening's gate: a title card's letters are large, and the detector at 320 px finds
# them at 60% of the time of 640 px (on the 71 openings of ../shared/media it found
# every title card and subtitle the 640 px one did, and missed two watermarks).
OPENING_GATE = "det-320"


def opening_time(frame_times) -> float | None:
    """When to read a video's opening for a title card before its first keyframe (at
    ``frame_times``), or None when the first keyframe is near enough the start."""
    first = min(frame_times, default=None)
    if first is None or first < OPENING_GAP:
        return None
    return min(OPENING, first / 2)


def follow_times(lines_at: dict[float, list], times: list[float], screens, shots: list[tuple[float, float]],
                 done: set[float]) -> list[tuple[float, float, float]]:
    """``(time, y0, y1)`` worth reading, in time order: for each line read at a time in
    ``times``, just after its tracked span ends and just before it starts, when that is
    inside its shot (the text changed there, not the picture) and no frame near it was
    read (``done``); ``y0, y1``: the band of the frame (0..1) its box covers. Bands
    wanted at one time are merged."""
    from indexer.stages.timeline import shot_at, tracked_span

    step = screens.times[1] - screens.times[0] if len(screens.times) > 1 else 0.25
    wanted: dict[float, tuple[float, float]] = {}
    for t in times:
        shot = shot_at(t, shots)
        if shot is None:
            continue
        for _, box in lines_at.get(t, []):
            span = tracked_span(t, [box], screens, shot)
            if span is None:
                continue
            lo, hi = span
            for cand, inside in ((hi + step / 2, hi < shot[1] - step), (lo - step / 2, lo > shot[0] + step)):
                if not inside or any(abs(cand - d) < NEAR for d in done):
                    continue
                near = next((w for w in wanted if abs(cand - w) < NEAR), None)
                if near is None:
                    wanted[cand] = (box[1], box[3])
                else:
                    wanted[near] = (min(wanted[near][0], box[1]), max(wanted[near][1], box[3]))
    return [(t, y0, y1) for t, (y0, y1) in sorted(wanted.items())]


def _read_band(rgb, y0: float, y1: float, gate: str | None = None
               ) -> tuple[list[tuple[str, list[float]]], list[float]]:
    """The text lines in the band of rows ``y0..y1`` (0..1, widened by a band's height
    each side), ``[(text, [x0, y0, x1, y1] in 0..1 of the frame)]``, and the band read
    (``[0, top, 1, bottom]``), through the OCR gate (``gate``: the default one unless
    named; only the default one's follow-up reads scale a small band up)."""
    from indexer import ocr
    from indexer.ocr_words import respace

    h, w = rgb.shape[:2]
    pad = max(y1 - y0, 0.05)
    top, bottom = max(0, int((y0 - pad) * h)), min(h, int(round((y1 + pad) * h)) + 1)
    band = rgb[top:bottom]
    if band.shape[0] < 8:
        return [], []
    read = [0.0, top / h, 1.0, bottom / h]
    scale = 1.0
    lines = _gated_read(band, gate or ocr.DEFAULT_GATE)
    if not lines and gate is None and max(band.shape[:2]) < FOLLOW_SIDE:
        # a follow-up reads where a tracked line just changed, so text is likely there: a
        # small video's band, which the gate's detector only ever scales down, is read
        # again scaled up to the detector's side (c027's 320x240 subtitle "American
        # version...": likelihood 0.0-0.33 and one fragment box as it is, 0.74 and the
        # whole line at 640 px); a band whose text went away reads nothing either way
        import cv2

        scale = FOLLOW_SIDE / max(band.shape[:2])
        lines = _gated_read(cv2.resize(band, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC),
                            ocr.DEFAULT_GATE)
    return [(respace(ln.text), ln.bounds(w * scale, h * scale, top=top * scale)) for ln in lines], read


def _gated_read(image, gate: str) -> list:
    """OCR lines of the gate's boxes, when the gate passes ``image``."""
    from indexer import ocr

    feats = ocr.gate_features(image, gate=gate)
    return ocr.ocr_frame(image, boxes=feats.boxes) if ocr.should_ocr(feats, gate=gate) else []


def split_times(lines_at: dict[float, list], screens, shots: list[tuple[float, float]],
                settled: set[tuple[float, float]]) -> list[tuple[float, float, float]]:
    """``(time, y0, y1)`` to read where two different lines were read in one place
    (``timeline.same_place``, ``timeline.other_text``) at neighbouring times of one shot
    more than SPLIT s apart, and the tracker cannot tell when one became the other (the
    later one's tracked span starts before the earlier one's ends): halfway between
    them, so the change is found to within SPLIT s by halving (``settled``: pairs not to
    split again)."""
    from indexer.stages.timeline import other_text, same_place, shot_at, tracked_span

    reads = sorted(((t, text, box) for t, lines in lines_at.items() for text, box in lines), key=lambda r: r[0])
    wanted: list[tuple[float, float, float]] = []
    for i, (ta, text_a, box_a) in enumerate(reads):
        shot = shot_at(ta, shots)
        if shot is None:
            continue
        # the next read in its place, within its shot
        in_shot = itertools.takewhile(lambda r, end=shot[1]: r[0] < end, itertools.islice(reads, i + 1, None))
        tb, text_b, box_b = next((r for r in in_shot if r[0] > ta and same_place(box_a, r[2])), (None, "", None))
        if tb is None or (ta, tb) in settled or tb - ta <= SPLIT or not other_text(text_a, text_b):
            continue
        span_a, span_b = tracked_span(ta, [box_a], screens, shot), tracked_span(tb, [box_b], screens, shot)
        if span_a is not None and span_b is not None and span_b[0] >= span_a[1] - 1e-6:
            continue  # the tracker saw the change
        settled.add((ta, tb))
        mid = 0.5 * (ta + tb)
        if all(abs(mid - w[0]) > 1e-6 for w in wanted):
            wanted.append((mid, min(box_a[1], box_b[1]), max(box_a[3], box_b[3])))
    return sorted(wanted)


class TextFollowStage(Stage):
    name = "text_follow"
    needs = ("keyframe_lines", "shots")
    adds = ("followup_lines", "followup_bands", "opening_text")
    at = 0.46

    @classmethod
    def enabled(cls, options: IndexOptions) -> bool:
        return options.ocr and options.timeline

    def applies(self, work: Work) -> bool:
        from indexer.stages.timeline import ScreenTap

        if work.tap(ScreenTap) is None:
            return False
        return any(work.keyframe_lines.values()) or opening_time([t for t, _ in work.frames]) is not None

    def run(self, work: Work) -> None:
        from indexer import media
        from indexer.stages.timeline import ScreenTap

        screens = work.tap(ScreenTap)
        if not screens.times:
            return
        shots = [(s.start, s.end) for s in work.shots]
        lines_at = {t: v for t, v in work.keyframe_lines.items() if v}
        done = {t for t, _ in work.frames}
        queue = sorted(lines_at)
        reads = found = 0
        opening = opening_time(done)
        wanted = [(opening, 0.0, 1.0)] if opening is not None else []  # the whole frame
        settled: set[tuple[float, float]] = set()
        while reads < MAX_READS:
            if not wanted and queue:
                wanted = follow_times(lines_at, queue, screens, shots, done)[: MAX_READS - reads]
                queue = []
            if not wanted:  # then where a line became another unseen by the tracker
                wanted = split_times(lines_at, screens, shots, settled)[: MAX_READS - reads]
            if not wanted:
                break
            frames = media.frames_at(work.source, [t for t, _, _ in wanted], size=1280)
            try:
                for (want, y0, y1), (t, rgb) in zip(wanted, frames):
                    reads += 1
                    done.update((want, t))
                    got, band = [], []
                    if t not in lines_at:
                        got, band = _read_band(rgb, y0, y1, OPENING_GATE if want == opening else None)
                    if band and want != opening:  # what a follow-up did not find there was not shown
                        work.followup_bands.setdefault(t, []).append(band)
                    if got:
                        lines_at[t] = work.followup_lines[t] = got
                        if want == opening:
                            work.opening_text[t] = [text for text, _ in got]
                        queue.append(t)
                        found += 1
            except MediaError as e:  # a follow-up is extra evidence: the video keeps what it has
                log.warning("%s: text follow-up stopped: %s", work.source, e)
                work.stats["text_follow_error"] = str(e)
                break
            wanted = []
        work.stats["text_follow"] = {"reads": reads, "frames_with_text": found}
