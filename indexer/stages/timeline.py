"""Timeline: the fine-grained evidence that a moment's boundaries are cut from.

- ``phrase``: the transcript's words cut at sentence ends, pauses and, in long
  stretches, commas, each unit with its text and text-space vector;
- ``text``: each line of on-screen text the keyframes' OCR read, tracked over the cut
  detector's 4 fps thumbnails (``ScreenTap``) from when its part of the screen last
  changed to when it next changes (within the shot), one span while it stays;
- ``visual``: one frame a second, taken from the frames the cut detector samples anyway
  (a ``SecondSampler`` tap: no second decode), with its visual vector and, as its
  text, its colour names (``indexer.colours``).

Stored in the catalog's ``timeline`` table with the video; ``query.moments`` reads it.
"""
from __future__ import annotations

import bisect
import math
import re
import time
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from engine.catalog import TimelineUnit
from engine.config import IndexConfig
from indexer.colours import colour_names
from indexer.options import IndexOptions
from indexer.stages.base import Stage, Work

__all__ = ["TimelineStage", "SecondSampler", "ScreenTap", "phrases", "text_spans", "tracked_span", "shot_at",
           "same_place", "other_text"]

PAUSE = 0.5  # s of silence between words that ends a phrase
COMMA_AFTER = 3.0  # s: a phrase this long also ends at a comma
MAX_PHRASE = 8.0  # s: a phrase never runs longer
TEXT_CHANGE = 15  # grey levels: a text box's cells changing more than this on average: the text changed
DIFFERENT = 0.3  # trigram share at or under which two reads are different lines (other_text)
OTHER_MIN = 8  # letters and digits: a shorter read is never called another line
_SENTENCE_END = re.compile(r"[.?!\u3002\uff1f\uff01\u2026]['\"\u201d\u2019)]*$")
_COMMA = re.compile(r"[,;:\uff0c\u3001\uff1b]['\"\u201d\u2019)]*$")


def phrases(words: Iterable[Sequence]) -> list[tuple[float, float, str]]:
    """``[[start, end, word], ...]`` (in time order) -> phrases ``(start, end, text)``."""
    out: list[tuple[float, float, str]] = []
    cur: list[Sequence] = []

    def close() -> None:
        if cur:
            out.append((float(cur[0][0]), float(cur[-1][1]), "".join(str(w[2]) for w in cur).strip()))
            cur.clear()

    for w in words:
        if cur and (float(w[0]) - float(cur[-1][1]) >= PAUSE or float(w[1]) - float(cur[0][0]) > MAX_PHRASE):
            close()
        cur.append(w)
        text = str(w[2]).strip()
        if _SENTENCE_END.search(text) or (_COMMA.search(text) and float(w[1]) - float(cur[0][0]) >= COMMA_AFTER):
            close()
    close()
    return [p for p in out if p[2]]


def shot_at(t: float, shots: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """The shot ``(start, end)`` holding ``t``; past the last one, the last one."""
    return next(((s, e) for s, e in shots if s <= t < e), tuple(shots[-1]) if shots else None)


def _keyframe_window(times: list[float], i: int, duration: float, shot: tuple[float, float] | None
                     ) -> tuple[float, float]:
    lo = 0.5 * (times[i - 1] + times[i]) if i > 0 else 0.0
    hi = 0.5 * (times[i] + times[i + 1]) if i + 1 < len(times) else duration
    if shot is not None:
        lo, hi = max(lo, shot[0]), min(hi, shot[1])
    return lo, hi


def tracked_span(t: float, boxes: Sequence[Sequence[float]], screens: "ScreenTap", shot: tuple[float, float] | None
             ) -> tuple[float, float] | None:
    """When the text boxes of the keyframe at ``t`` were on screen: the run of the cut
    detector's samples around ``t`` whose thumbnail cells under the boxes stay within
    TEXT_CHANGE grey levels (mean absolute difference) of the sample at ``t``, inside the
    shot; one odd sample between two that match (something passing in front) is bridged."""
    if not boxes or not screens.times:
        return None
    h, w = screens.shape
    mask = np.zeros((h, w), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask[int(y0 * h): max(int(y0 * h) + 1, int(math.ceil(y1 * h))),
             int(x0 * w): max(int(x0 * w) + 1, int(math.ceil(x1 * w)))] = True
    times = screens.times
    ref = min(range(len(times)), key=lambda i: abs(times[i] - t))
    if abs(times[ref] - t) > 1.0:
        return None
    base = screens.thumbs[ref][mask].astype(np.int16)
    lo_t, hi_t = (shot if shot is not None else (0.0, math.inf))

    def same(i: int) -> bool:
        if not (0 <= i < len(times) and lo_t - 1e-6 <= times[i] < hi_t):
            return False
        return float(np.abs(screens.thumbs[i][mask].astype(np.int16) - base).mean()) <= TEXT_CHANGE

    lo = hi = ref
    while same(lo - 1) or same(lo - 2):
        lo -= 1 if same(lo - 1) else 2
    while same(hi + 1) or same(hi + 2):
        hi += 1 if same(hi + 1) else 2
    step = times[1] - times[0] if len(times) > 1 else 0.25
    start = 0.5 * (times[lo - 1] + times[lo]) if lo > 0 else 0.0
    end = 0.5 * (times[hi] + times[hi + 1]) if hi + 1 < len(times) else times[hi] + step
    return max(start, lo_t), min(end, hi_t)


def _alnum(s: str) -> str:
    return "".join(ch for ch in s.lower() if ch.isalnum())


def _trigrams(s: str) -> set[str]:
    s = _alnum(s)
    return {s[i : i + 3] for i in range(max(0, len(s) - 2))} or {s}


def _overlap_share(a: str, b: str) -> float:
    ta, tb = _trigrams(a), _trigrams(b)
    return len(ta & tb) / len(ta | tb)


def _same_text(a: str, b: str) -> bool:
    """The same line read twice (OCR misreads a letter or a space now and then)."""
    return _overlap_share(a, b) >= 0.6


def other_text(a: str, b: str) -> bool:
    """Clearly another line, not a misreading nor a part of the same one: both at least
    OTHER_MIN letters and digits long (short reads say too little: "x2x3" and "x29x3" are
    one formula misread), at most DIFFERENT of their character trigrams shared ("A
    different version?" and "American version...": 0.22; a line and its misreading 0.6
    and more), and at most half of the shorter one's found in the other (a partly
    hidden line read as "Factoring" against "Factoring Polynomials")."""
    if min(len(_alnum(a)), len(_alnum(b))) < OTHER_MIN:
        return False
    ta, tb = _trigrams(a), _trigrams(b)
    shared = len(ta & tb)
    return shared / len(ta | tb) <= DIFFERENT and shared / min(len(ta), len(tb)) <= 0.5


def same_place(a: Sequence[float], b: Sequence[float]) -> bool:
    """Two text boxes (``[x0, y0, x1, y1]``, 0..1) in one place on the screen: they
    overlap across, and down over at least half the height of the shorter one."""
    rows = min(a[3], b[3]) - max(a[1], b[1])
    return min(a[2], b[2]) > max(a[0], b[0]) and rows >= 0.5 * min(a[3] - a[1], b[3] - b[1])


def _cut_by_other_reads(spans: list[list], reads: list[tuple[float, str, Sequence[float]]],
                        bands: dict[float, list] | None) -> None:
    """Two different lines are not shown in one place at once: where the tracker ran a
    line's span over a time when another line was read in its place (``other_text``), or
    a follow-up read its place and found nothing there (``bands``: time -> the bands it
    read), the span ends (or starts) halfway between that read and its own nearest read
    of the line (two subtitles of one size look alike on the tracker's 64x36
    thumbnails). Reads are ground truth; spans only shrink."""
    reads = sorted(reads, key=lambda r: r[0])
    times = [r[0] for r in reads]
    band_times = sorted(bands or {})
    for sp in spans:
        lo, hi, text, box, own = sp
        inside = reads[bisect.bisect_right(times, lo) : bisect.bisect_left(times, hi)]  # a long video reads much
        there = [(t, other) for t, other, obox in inside if same_place(box, obox)]
        against = {t for t, other in there if other_text(text, other)}
        seen = {t for t, _ in there}
        against |= {t for t in band_times[bisect.bisect_right(band_times, lo) : bisect.bisect_left(band_times, hi)]
                    if t not in seen and any(same_place(box, b) for b in bands[t])}
        for t in against:  # each inside the tracked span
            before, after = [r for r in own if r < t], [r for r in own if r > t]
            if before and not after:
                hi = min(hi, 0.5 * (max(before) + t))
            elif after and not before:
                lo = max(lo, 0.5 * (min(after) + t))
        sp[0], sp[1] = lo, hi


def text_spans(keyframe_lines: dict[float, list], shots: Sequence[tuple[float, float]], duration: float,
               screens: "ScreenTap | None" = None, bands: dict[float, list] | None = None
               ) -> list[tuple[float, float, str]]:
    """Keyframe OCR lines (time -> [(text, [x0, y0, x1, y1] in 0..1), ...]) -> spans
    ``(start, end, text)``, one per line of text.

    With the cut detector's screen thumbnails, a line's span is tracked: from when its
    box's part of the screen last changed before the keyframe to when it next changes
    (to an eighth of a second at 4 samples a second). Otherwise it counts from halfway
    after the previous keyframe to halfway before the next, inside its shot. The same
    line read in the same place at consecutive keyframes is one span. A span never
    covers a time another line was read in its place, nor one when a follow-up read its
    place (``bands``: time -> the bands it read, [0, y0, 1, y1]) and found it empty
    (``_cut_by_other_reads``)."""
    times = sorted(keyframe_lines)
    spans: list[list] = []  # [lo, hi, text, box, read times]
    reads: list[tuple[float, str, Sequence[float]]] = []
    for i, t in enumerate(times):
        shot = shot_at(t, shots)
        window = _keyframe_window(times, i, duration, shot)
        for text, box in keyframe_lines[t]:
            text = text.strip()
            if not text:
                continue
            reads.append((t, text, box))
            tracked = tracked_span(t, [box], screens, shot) if screens is not None else None
            lo, hi = tracked or window
            for sp in reversed(spans[-16:]):
                if _same_text(sp[2], text) and same_place(sp[3], box) and lo - sp[1] < 0.5 and hi > sp[0] - 0.5:
                    sp[0], sp[1] = min(sp[0], lo), max(sp[1], hi)
                    sp[4].append(t)
                    break
            else:
                spans.append([lo, hi, text, box, [t]])
    _cut_by_other_reads(spans, reads, bands)
    return sorted(((float(a), float(b), c) for a, b, c, _, _ in spans if b > a), key=lambda x: (x[0], x[1]))


class ScreenTap:
    """A tap on the cut detector's samples keeping a small gray thumbnail of each
    (``shape`` rows x cols, uint8: 2.3 KB a sample), to tell when on-screen text
    appears and goes."""

    def __init__(self, shape: tuple[int, int] = (36, 64)) -> None:
        self.shape = shape
        self.times: list[float] = []
        self.thumbs: list[np.ndarray] = []

    def tap(self, samples: Iterable[tuple[float, np.ndarray]]) -> Iterator[tuple[float, np.ndarray]]:
        import cv2

        for t, frame in samples:
            gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            self.thumbs.append(cv2.resize(gray, (self.shape[1], self.shape[0]), interpolation=cv2.INTER_AREA))
            self.times.append(float(t))
            yield t, frame


class SecondSampler:
    """A tap on the cut detector's samples: keeps the first frame at or after each
    multiple of ``every`` seconds and encodes them ``batch`` at a time with ``encode``
    (frames -> unit vectors), so only vectors are held."""

    def __init__(self, encode: Callable[[list[np.ndarray]], np.ndarray], every: float = 1.0, batch: int = 32):
        self.encode, self.every, self.batch = encode, every, batch
        self._next = 0.0
        self._pending: list[tuple[float, np.ndarray]] = []
        self.samples: list[tuple[float, np.ndarray]] = []
        self.colours: list[str] = []  # per sample: its colour names (indexer.colours), space-separated
        self.seconds = 0.0  # spent encoding (inside the shots stage's time)

    def tap(self, samples: Iterable[tuple[float, np.ndarray]]) -> Iterator[tuple[float, np.ndarray]]:
        for t, frame in samples:
            if t >= self._next - 1e-6:
                self._pending.append((float(t), frame))
                self._next = (math.floor(t / self.every + 1e-9) + 1) * self.every
                if len(self._pending) >= self.batch:
                    self._flush()
            yield t, frame
        self._flush()

    def _flush(self) -> None:
        if self._pending:
            t0 = time.perf_counter()
            vecs = self.encode([f for _, f in self._pending])
            self.colours.extend(" ".join(name for name, _ in colour_names(f)) for _, f in self._pending)
            self.seconds += time.perf_counter() - t0
            self.samples.extend((t, np.asarray(v, dtype=np.float32)) for (t, _), v in zip(self._pending, vecs))
            self._pending = []


class TimelineStage(Stage):
    name = "timeline"
    needs = ("segments",)
    adds = ("timeline",)
    at = 0.95

    @classmethod
    def enabled(cls, options: IndexOptions) -> bool:
        return options.timeline

    def model(self, config: IndexConfig) -> str | None:
        return f"{config.text_encoder} (phrases, text), {config.image_encoder} (1 frame a second)"

    def prepare(self, work: Work) -> None:
        if work.options.ocr:
            work.frame_taps.append(ScreenTap())
        if work.options.visual:
            from engine.models.registry import get_image_encoder

            enc = get_image_encoder(work.config.image_encoder, **work.config.image_options)
            work.frame_taps.append(SecondSampler(enc.encode_images))

    def run(self, work: Work) -> None:
        from engine.models.registry import get_text_encoder

        words = list({(w[0], w[1], w[2]): w for ws in work.words for w in ws}.values())  # a word once
        said = phrases(words)
        shown = text_spans({**work.keyframe_lines, **work.followup_lines}, [(s.start, s.end) for s in work.shots],
                           float(work.info.duration), work.tap(ScreenTap), work.followup_bands)
        texts = list(dict.fromkeys([t for _, _, t in said] + [t for _, _, t in shown]))
        vecs = dict(zip(texts, get_text_encoder(work.config.text_encoder).encode(texts))) if texts else {}
        units = [TimelineUnit("phrase", a, b, t, vecs[t]) for a, b, t in said]
        units += [TimelineUnit("text", a, b, t, vecs[t]) for a, b, t in shown]
        for tap in work.frame_taps:
            if isinstance(tap, SecondSampler):
                units += [TimelineUnit("visual", t, t + tap.every, c, v) for (t, v), c in zip(tap.samples, tap.colours)]
                work.stats["timeline_visual_seconds"] = round(tap.seconds, 4)
        work.timeline = units
