"""Highlight reels: score candidate segments, choose and trim them, and write the edit decision list.

Pure functions over features passed in (``indexer.highlight_features`` measures
them from the media; ``api.production`` wires the two), so everything here is
testable with hand-made series.

Scoring
    Each candidate segment gets raw values per part, normalised to [0, 1] across the
    candidates (min-max; all equal gives 0.5 for all, so a part that does not
    separate the candidates does not reorder them), then a weighted mean:

    ``relevance``   the query planner's score of the hit the segment belongs to
    ``audio``       mean loudness over the segment minus the video's median (dB): loud for this video
    ``excitement``  excitement peaks per second plus the strongest onset (z-score within the video)
    ``motion``      mean frame difference at low resolution
    ``speech``      words per second from the segment's transcript timings
    ``quality``     mean cover-quality score of frames in the segment (0 for rejected frames)

    Without a query ``relevance`` has no weight. A part a video lacks (no audio, no
    speech) scores 0 for that video's candidates.

Selection
    Greedy by score: each candidate is trimmed to at most ``max_piece`` seconds at
    natural boundaries (shot cuts from the catalogue's shots, pauses in speech from
    the word timings; never inside a word), cut away from ranges already chosen in
    the same video (no overlap), and taken when it fits the remaining time. The reel
    lasts ``sum(durations) - (n - 1) * fade`` (consecutive pieces cross-fade), and
    the selection never plans more than ``target``. Then the pieces are put in story
    order (video order, then time) or by score.
"""
from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Literal, Protocol

import numpy as np

from engine.errors import InputError, UnknownNameError

__all__ = [
    "ORDERS",
    "PARTS",
    "TrackLike",
    "VideoSignals",
    "Candidate",
    "HighlightWeights",
    "ScoredSegment",
    "EdlEntry",
    "EditDecisionList",
    "score_segments",
    "natural_boundaries",
    "trim_window",
    "select_highlights",
]

ORDERS: tuple[str, ...] = ("story", "score")
PARTS: tuple[str, ...] = ("relevance", "audio", "excitement", "motion", "speech", "quality")
Order = Literal["story", "score"]

# Gaps between words at least this long are pauses where a cut does not clip speech.
PAUSE_MIN_S = 0.25
# A segment edge this close to a shot cut is that cut.
_CUT_TOL = 0.05


class TrackLike(Protocol):
    """A time series: ``values[i]`` at ``times[i]`` seconds, ascending (e.g.
    ``indexer.highlight_features.FeatureTrack``)."""

    times: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class VideoSignals:
    """What is known about one video for highlights: its catalogue structure (shots,
    word timings ``(start, end, word)``) and its media features (tracks may be None)."""

    video_id: str
    source: str
    duration: float
    shots: tuple[tuple[float, float], ...] = ()
    words: tuple[tuple[float, float, str], ...] = ()
    loudness: TrackLike | None = None
    onsets: TrackLike | None = None
    peaks: tuple[float, ...] = ()
    motion: TrackLike | None = None
    quality: TrackLike | None = None


@dataclass(frozen=True)
class Candidate:
    """A time range of a video that may go into the reel (a catalogue segment)."""

    video_id: str
    start: float
    end: float
    segment_id: int | None = None
    relevance: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)) or self.end <= self.start:
            raise InputError(f"candidate {self.video_id} {self.start}-{self.end} s must have start < end")


@dataclass(frozen=True)
class HighlightWeights:
    """Weights of the score parts (renormalised over the parts in use)."""

    relevance: float = 0.40
    audio: float = 0.15
    excitement: float = 0.15
    motion: float = 0.10
    speech: float = 0.10
    quality: float = 0.10

    def __post_init__(self) -> None:
        for p in PARTS:
            v = getattr(self, p)
            if not (math.isfinite(v) and v >= 0):
                raise InputError(f"weight {p}={v!r} must be a non-negative number")

    def active(self, *, query: bool) -> dict[str, float]:
        """The weights in use, summing to 1: without a query, relevance is left out."""
        w = {p: float(getattr(self, p)) for p in PARTS if query or p != "relevance"}
        total = sum(w.values())
        if total <= 0:
            raise InputError("at least one highlight weight must be positive")
        return {p: v / total for p, v in w.items()}


@dataclass(frozen=True)
class ScoredSegment:
    """A candidate with its total score, normalised parts and raw measurements."""

    candidate: Candidate
    score: float
    parts: dict[str, float]
    raw: dict[str, float | None]


@dataclass(frozen=True)
class EdlEntry:
    """One piece of the reel: ``source_in``/``source_out`` in the video, ``output_in``/
    ``output_out`` in the reel, why it was chosen and where it was cut."""

    index: int
    video_id: str
    source: str
    segment_id: int | None
    source_in: float
    source_out: float
    output_in: float
    output_out: float
    score: float
    parts: dict[str, float]
    raw: dict[str, float | None]
    reason: str
    in_boundary: str
    out_boundary: str

    @property
    def duration(self) -> float:
        return self.source_out - self.source_in


@dataclass(frozen=True)
class EditDecisionList:
    """What a reel used and why. ``duration`` = ``sum(entry durations) - (n-1) * fade``."""

    target_duration: float
    fade: float
    order: str
    entries: tuple[EdlEntry, ...]
    weights: dict[str, float]
    query: str | None = None
    video_id: str | None = None
    candidates: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        if not self.entries:
            return 0.0
        return sum(e.duration for e in self.entries) - (len(self.entries) - 1) * self.fade

    def to_dict(self) -> dict:
        return {
            "version": 1,
            "query": self.query,
            "video_id": self.video_id,
            "target_duration": self.target_duration,
            "duration": round(self.duration, 6),
            "fade": round(self.fade, 6),
            "order": self.order,
            "weights": {k: round(v, 4) for k, v in self.weights.items()},
            "candidates": self.candidates,
            "entries": [_entry_dict(e) for e in self.entries],
            **self.extra,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def retimed(self, pieces: Sequence[tuple[float, float, float, float]], fade: float, **extra) -> EditDecisionList:
        """This list with the timing a renderer actually used: ``(source_in, source_out,
        output_in, output_out)`` per entry (a renderer snaps to its frame grid)."""
        if len(pieces) != len(self.entries):
            raise InputError(f"{len(pieces)} rendered pieces for {len(self.entries)} EDL entries")
        entries = tuple(replace(e, source_in=a, source_out=b, output_in=c, output_out=d)
                        for e, (a, b, c, d) in zip(self.entries, pieces))
        return replace(self, entries=entries, fade=fade, extra={**self.extra, **extra})


def _entry_dict(e: EdlEntry) -> dict:
    d = asdict(e)
    for k in ("source_in", "source_out", "output_in", "output_out", "score"):
        d[k] = round(d[k], 6)
    d["duration"] = round(e.duration, 6)
    d["parts"] = {k: round(v, 4) for k, v in e.parts.items()}
    d["raw"] = {k: (None if v is None else round(v, 4)) for k, v in e.raw.items()}
    return d


# ---------------------------------------------------------------------------
# Scoring


def _slice(track: TrackLike | None, a: float, b: float) -> np.ndarray | None:
    if track is None or len(track.times) == 0:
        return None
    t = np.asarray(track.times)
    lo, hi = np.searchsorted(t, a, "left"), np.searchsorted(t, b, "left")
    if hi <= lo:  # a range shorter than the sampling step: the nearest sample
        i = int(min(len(t) - 1, np.searchsorted(t, (a + b) / 2)))
        return np.asarray(track.values[i : i + 1], dtype=np.float64)
    return np.asarray(track.values[lo:hi], dtype=np.float64)


def _words_in(words: Sequence[tuple[float, float, str]], a: float, b: float) -> int:
    return sum(1 for s, e, _ in words if a <= (s + e) / 2 < b)


def _raw_parts(c: Candidate, sig: VideoSignals, stats: dict[str, float]) -> dict[str, float | None]:
    a, b = c.start, c.end
    raw: dict[str, float | None] = {"relevance": c.relevance}
    loud = _slice(sig.loudness, a, b)
    raw["audio"] = None if loud is None else float(loud.mean() - stats["median_loud"])
    ons = _slice(sig.onsets, a, b)
    if ons is None:
        raw["excitement"] = None
    else:
        z = (float(ons.max()) - stats["onset_mean"]) / stats["onset_std"] if stats["onset_std"] > 0 else 0.0
        n_peaks = sum(1 for p in sig.peaks if a <= p < b)
        raw["excitement"] = max(0.0, z) + n_peaks / (b - a)
    mot = _slice(sig.motion, a, b)
    raw["motion"] = None if mot is None else float(mot.mean())
    raw["speech"] = _words_in(sig.words, a, b) / (b - a) if sig.words else None
    q = _slice(sig.quality, a, b)
    raw["quality"] = None if q is None else float(q.mean())
    return raw


def _video_stats(sig: VideoSignals) -> dict[str, float]:
    loud = np.asarray(sig.loudness.values) if sig.loudness is not None and len(sig.loudness.values) else None
    ons = np.asarray(sig.onsets.values) if sig.onsets is not None and len(sig.onsets.values) else None
    return {
        "median_loud": float(np.median(loud)) if loud is not None else 0.0,
        "onset_mean": float(ons.mean()) if ons is not None else 0.0,
        "onset_std": float(ons.std()) if ons is not None else 0.0,
    }


def score_segments(
    candidates: Sequence[Candidate],
    signals: Mapping[str, VideoSignals],
    *,
    weights: HighlightWeights | None = None,
    query: bool | None = None,
) -> list[ScoredSegment]:
    """Score every candidate (see the module docstring); best first.

    ``query``: whether relevance counts (default: when any candidate has a relevance).
    Raises InputError for a candidate of a video missing from ``signals``.
    """
    weights = weights or HighlightWeights()
    if query is None:
        query = any(c.relevance is not None for c in candidates)
    w = weights.active(query=query)
    stats = {vid: _video_stats(s) for vid, s in signals.items()}
    raws: list[dict[str, float | None]] = []
    for c in candidates:
        if c.video_id not in signals:
            raise InputError(f"candidate of video {c.video_id!r} has no signals", hint="pass signals for every video")
        raws.append(_raw_parts(c, signals[c.video_id], stats[c.video_id]))
    norm: dict[str, list[float]] = {}
    for p in w:
        vals = [r[p] for r in raws]
        present = [v for v in vals if v is not None]
        lo, hi = (min(present), max(present)) if present else (0.0, 0.0)
        spread = hi - lo
        # A zero spread carries no information: the same 0.5 for all keeps the order.
        norm[p] = [0.0 if v is None else (0.5 if spread <= 1e-12 else (v - lo) / spread) for v in vals]
    out = []
    for i, c in enumerate(candidates):
        parts = {p: norm[p][i] for p in w}
        score = sum(w[p] * parts[p] for p in w)
        out.append(ScoredSegment(c, float(score), parts, raws[i]))
    out.sort(key=lambda s: (-s.score, s.candidate.video_id, s.candidate.start))
    return out


# ---------------------------------------------------------------------------
# Natural boundaries and trimming


def natural_boundaries(sig: VideoSignals) -> list[tuple[float, str]]:
    """Times where a cut looks intended, ascending: shot cuts (``shot``) and pauses in
    speech (``pause``: the middle of a gap of at least 0.25 s between words, and the
    edges of the speech)."""
    out: dict[float, str] = {}
    for s, e in sig.shots:
        for t in (s, e):
            out[round(float(t), 3)] = "shot"
    words = sorted(sig.words)
    for (s0, e0, _), (s1, _e1, _) in zip(words, words[1:]):
        if s1 - e0 >= PAUSE_MIN_S:
            out.setdefault(round((e0 + s1) / 2, 3), "pause")
    if words:
        out.setdefault(round(max(0.0, words[0][0] - 0.05), 3), "pause")
        out.setdefault(round(min(sig.duration, words[-1][1] + 0.05), 3), "pause")
    out.setdefault(0.0, "shot")
    out.setdefault(round(sig.duration, 3), "shot")
    return sorted(out.items())


def _inside_word(t: float, words: Sequence[tuple[float, float, str]]) -> tuple[float, float] | None:
    for s, e, _ in words:
        if s < t < e:
            return (s, e)
    return None


def _kind_at(t: float, bounds: list[tuple[float, str]]) -> str | None:
    """The kind of boundary at ``t`` (within 50 ms); a shot cut wins over a pause."""
    times = [b[0] for b in bounds]
    lo, hi = bisect.bisect_left(times, t - _CUT_TOL), bisect.bisect_right(times, t + _CUT_TOL)
    kinds = {k for _, k in bounds[lo:hi]}
    return "shot" if "shot" in kinds else (next(iter(kinds)) if kinds else None)


def _interest(sig: VideoSignals, a: float, b: float) -> float:
    """How much happens in [a, b): peaks, motion and loudness, for choosing a window."""
    score = sum(1.0 for p in sig.peaks if a <= p < b)
    mot = _slice(sig.motion, a, b)
    if mot is not None:
        score += 10.0 * float(mot.mean())
    loud = _slice(sig.loudness, a, b)
    if loud is not None:
        score += max(0.0, (float(loud.mean()) + 60.0) / 60.0)
    return score


def trim_window(
    sig: VideoSignals,
    start: float,
    end: float,
    *,
    max_len: float,
    min_len: float,
    bounds: list[tuple[float, str]] | None = None,
) -> tuple[float, float, str, str] | None:
    """The best sub-range of ``[start, end]`` at most ``max_len`` long, cut at natural
    boundaries where possible and never inside a word.

    Returns ``(in, out, in_kind, out_kind)`` where a kind is ``shot``, ``pause``,
    ``segment`` (the candidate's own edge, e.g. a window edge inside a long shot),
    ``word`` (an edge moved out of a word it fell in) or ``trim`` (cut for length
    with no boundary in reach); None when nothing of at
    least ``min_len`` fits.
    """
    if end - start < min_len - 1e-9:
        return None
    bounds = natural_boundaries(sig) if bounds is None else bounds
    words = sig.words
    inner = [(t, k) for t, k in bounds if start + 1e-6 < t < end - 1e-6]
    if end - start <= max_len + 1e-9:
        a = _clear_of_words(start, +1, words)
        b = _clear_of_words(end, -1, words)
        if b - a >= min_len - 1e-9:
            return a, b, _edge_kind(a, bounds) if a == start else "word", _edge_kind(b, bounds) if b == end else "word"
    # Windows that start at the candidate's start or at a boundary inside it.
    starts = [(_clear_of_words(start, +1, words), None)] + [(t, k) for t, k in inner if _inside_word(t, words) is None]
    best: tuple[float, tuple[float, float, str, str]] | None = None
    for a, a_kind in starts:
        lim = min(end, a + max_len)
        if lim - a < min_len - 1e-9:
            continue
        out = _window_end(a, lim, end, inner, words, bounds, min_len)
        if out is None:
            continue
        b, b_kind = out
        kinds = (a_kind or _edge_kind(a, bounds), b_kind)
        # Prefer windows where more happens, then natural cuts at both ends, then longer.
        natural = sum(k in ("shot", "pause") for k in kinds)
        key = _interest(sig, a, b) + 0.25 * natural + 0.01 * (b - a)
        if best is None or key > best[0] + 1e-9:
            best = (key, (a, b, *kinds))
    return None if best is None else best[1]


def _edge_kind(t: float, bounds: list[tuple[float, str]]) -> str:
    return _kind_at(t, bounds) or "segment"


def _clear_of_words(t: float, direction: int, words) -> float:
    """``t``, or the edge of the word it falls inside (its end going forward, else its start)."""
    w = _inside_word(t, words)
    if w is None:
        return t
    return w[1] if direction > 0 else w[0]


def _window_end(a: float, lim: float, end: float, inner: list[tuple[float, str]], words,
                bounds: list[tuple[float, str]], min_len: float) -> tuple[float, str] | None:
    """Where a window starting at ``a`` ends (at most ``lim``): the last boundary in
    reach, or the candidate's end, or a cut for length clear of words; with its kind."""
    ends = [(t, k) for t, k in inner if a + min_len - 1e-9 <= t <= lim + 1e-9 and _inside_word(t, words) is None]
    if lim >= end - 1e-9:
        e_clear = _clear_of_words(end, -1, words)
        if e_clear - a >= min_len - 1e-9:
            ends.append((e_clear, None if e_clear == end else "word"))
    if ends:
        b, b_kind = ends[-1]
        return b, b_kind or _edge_kind(b, bounds)
    b = _clear_of_words(lim, -1, words)
    if b - a < min_len - 1e-9:
        return None
    return b, "trim" if b == lim else "word"


# ---------------------------------------------------------------------------
# Selection


def _free_parts(a: float, b: float, taken: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    parts = [(a, b)]
    for s, e in taken:
        nxt = []
        for x, y in parts:
            if e <= x or s >= y:
                nxt.append((x, y))
                continue
            if s > x:
                nxt.append((x, s))
            if e < y:
                nxt.append((e, y))
        parts = nxt
    return parts


def _reason(s: ScoredSegment, in_kind: str, out_kind: str) -> str:
    labels = {
        "relevance": "matches the query", "audio": "loud for this video", "excitement": "excitement peaks",
        "motion": "lots of motion", "speech": "dense speech", "quality": "good picture quality",
    }
    top = sorted(s.parts.items(), key=lambda kv: -kv[1])[:2]
    why = ", ".join(f"{labels[p]} ({v:.2f})" for p, v in top if v > 0) or "best remaining segment"
    return f"score {s.score:.2f}: {why}; in at {in_kind}, out at {out_kind}"


def _check_reel(order: str, target: float, fade: float, min_piece: float, max_piece: float) -> None:
    if order not in ORDERS:
        raise UnknownNameError("order", str(order), ORDERS)
    if not (math.isfinite(target) and target > 0):
        raise InputError(f"target duration {target!r} must be a positive number of seconds", hint="e.g. --duration 30")
    if not (math.isfinite(fade) and 0 <= fade):
        raise InputError(f"fade {fade!r} must be a non-negative number of seconds")
    if not min_piece > 2 * fade:
        raise InputError(f"min_piece {min_piece} s must be longer than two fades ({2 * fade} s)",
                         hint="use a shorter --fade")
    if max_piece < min_piece:
        raise InputError(f"max_piece {max_piece} s must be at least min_piece {min_piece} s")
    if min_piece > target + 1e-9:
        raise InputError(f"the target {target} s is shorter than the shortest piece ({min_piece} s)",
                         hint=f"ask for at least {min_piece} s")


_Piece = tuple  # (ScoredSegment, source in, source out, in boundary, out boundary)


def _pick_pieces(scored: Sequence[ScoredSegment], signals: Mapping[str, VideoSignals], target: float,
                 fade: float, max_piece: float, min_piece: float) -> list[_Piece]:
    """Best first: the longest trimmed window of each segment's free part that still
    fits the reel, until the reel is full."""
    bounds = {vid: natural_boundaries(sig) for vid, sig in signals.items()}
    taken: dict[str, list[tuple[float, float]]] = {}
    chosen: list[_Piece] = []
    total = 0.0
    for s in scored:
        c = s.candidate
        sig = signals[c.video_id]
        room = target - total + (fade if chosen else 0.0)  # a new piece overlaps the last by the fade
        if room < min_piece - 1e-9:
            break
        best = None
        for a, b in _free_parts(c.start, min(c.end, sig.duration), taken.get(c.video_id, [])):
            w = trim_window(sig, a, b, max_len=min(max_piece, room), min_len=min_piece, bounds=bounds[c.video_id])
            if w is not None and (best is None or w[1] - w[0] > best[1] - best[0]):
                best = w
        if best is None:
            continue
        a, b, k_in, k_out = best
        taken.setdefault(c.video_id, []).append((a, b))
        chosen.append((s, a, b, k_in, k_out))
        total += (b - a) - (fade if len(chosen) > 1 else 0.0)
    return chosen


def _entries(chosen: list[_Piece], signals: Mapping[str, VideoSignals], fade: float) -> list[EdlEntry]:
    entries = []
    t = 0.0
    for i, (s, a, b, k_in, k_out) in enumerate(chosen):
        if i > 0:
            t -= fade
        c = s.candidate
        entries.append(EdlEntry(
            index=i, video_id=c.video_id, source=signals[c.video_id].source, segment_id=c.segment_id,
            source_in=a, source_out=b, output_in=t, output_out=t + (b - a), score=s.score, parts=dict(s.parts),
            raw=dict(s.raw), reason=_reason(s, k_in, k_out), in_boundary=k_in, out_boundary=k_out,
        ))
        t += b - a
    return entries


def select_highlights(
    scored: Sequence[ScoredSegment],
    signals: Mapping[str, VideoSignals],
    *,
    target: float,
    fade: float = 0.5,
    order: Order = "story",
    max_piece: float = 8.0,
    min_piece: float = 1.5,
    weights: dict[str, float] | None = None,
    query: str | None = None,
    video_id: str | None = None,
) -> EditDecisionList:
    """Choose non-overlapping pieces whose reel lasts at most ``target`` seconds.

    ``scored`` best first (as :func:`score_segments` returns). ``signals``' key order
    is the story order of the videos. Raises InputError for a bad target, fade, order
    or piece bounds, and when not even one piece fits.
    """
    _check_reel(order, target, fade, min_piece, max_piece)
    chosen = _pick_pieces(scored, signals, target, fade, max_piece, min_piece)
    if not chosen:
        raise InputError(
            f"no segment of at least {min_piece} s fits a {target} s reel",
            hint="ask for a longer reel, or index the videos first (vidseek index)",
        )
    video_rank = {vid: i for i, vid in enumerate(signals)}
    if order == "story":
        chosen.sort(key=lambda x: (video_rank.get(x[0].candidate.video_id, 0), x[1]))
    entries = _entries(chosen, signals, fade)
    return EditDecisionList(
        target_duration=float(target), fade=float(fade), order=order, entries=tuple(entries),
        weights=dict(weights or {}), query=query, video_id=video_id, candidates=len(scored),
    )
