"""`vidseek clip` and `vidseek highlight`, and the library calls behind them (shared by the HTTP routes).

``clip_video`` resolves a video id in an index to its media and exports a range
(``indexer.export``). ``build_highlight`` wires the highlight parts together: the
candidates come from the catalogue (every segment of one video) or from the query
planner (the segments of the hits, with their scores as relevance); the media
features from ``indexer.highlight_features``; scoring and selection from
``query.highlights``; the reel from ``indexer.reel``; the EDL gets the timing the
renderer actually used.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.atomic import atomic_write_json
from engine.errors import InputError, NotFoundError, UnknownNameError

__all__ = [
    "register",
    "HighlightRequest",
    "HighlightResult",
    "resolve_video",
    "clip_video",
    "build_highlight",
    "cmd_clip",
    "cmd_highlight",
]

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, float], None]

# Progress shares of a highlight's stages (features dominate for long videos, the
# render for long reels).
_SEARCH, _FEATURES, _RENDER = 0.05, 0.6, 1.0


@dataclass(frozen=True)
class HighlightRequest:
    """A reel to make: of one video (``video_id``) or of the best matches of ``query``.

    ``duration``: the target (the reel never lasts longer); ``fade``: the cross-fade
    between pieces; ``order``: ``story`` (video order, then time) or ``score``;
    ``max_videos``: how many of a query's best videos to draw from; ``max_piece`` /
    ``min_piece``: bounds of one piece in seconds.
    """

    video_id: str | None = None
    query: str | None = None
    duration: float = 30.0
    order: str = "story"
    fade: float = 0.5
    tenant: str | None = None
    max_videos: int = 5
    max_piece: float = 8.0
    min_piece: float = 1.5

    def __post_init__(self) -> None:
        from query.highlights import ORDERS

        if (self.video_id is None) == (self.query is None or not self.query.strip()):
            raise InputError("give exactly one of a video id or a query",
                             hint="vidseek highlight VIDEO_ID ... or vidseek highlight --query \"...\" ...")
        if not (isinstance(self.duration, (int, float)) and math.isfinite(self.duration) and self.duration > 0):
            raise InputError(f"duration {self.duration!r} must be a positive number of seconds",
                             hint="e.g. --duration 30")
        if self.order not in ORDERS:
            raise UnknownNameError("order", self.order, ORDERS)
        if not (math.isfinite(self.fade) and 0 <= self.fade <= 2.0):
            raise InputError(f"fade {self.fade!r} must be between 0 and 2 seconds", hint="e.g. --fade 0.5")
        if not 1 <= self.max_videos <= 50:
            raise InputError(f"max_videos {self.max_videos} must be in 1..50")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HighlightRequest:
        """From a JSON object; unknown keys are an error that lists the known ones."""
        known = set(cls.__dataclass_fields__)
        extra = set(d) - known
        if extra:
            raise InputError(f"unknown highlight field(s) {sorted(extra)}; known: {sorted(known)}")
        return cls(**d)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class HighlightResult:
    """A made reel: the MP4 path, the EDL (with the rendered timing) and the render facts."""

    path: str
    edl: Any  # query.highlights.EditDecisionList
    reel: Any  # indexer.reel.ReelResult


def resolve_video(index, video_id: str, tenant: str | None = None):
    """The catalogue record of ``video_id`` whose media is still on disk.

    Raises NotFoundError for an unknown id (or another tenant's) and for media that
    has moved or been deleted since it was indexed.
    """
    rec = index.catalog.get_video(video_id, tenant=tenant)
    if not os.path.isfile(rec.source):
        raise NotFoundError(f"the media of video {video_id} is no longer at {rec.source}",
                            hint="restore the file, or index it again from its new place")
    return rec


def clip_video(index, video_id: str, start: float, end: float, out: str | os.PathLike[str], *,
               tenant: str | None = None, copy: str = "auto", limits=None, progress: ProgressFn | None = None):
    """Export ``[start, end)`` of an indexed video to ``out`` (see indexer.export.export_clip)."""
    from indexer.export import export_clip

    rec = resolve_video(index, video_id, tenant)
    return export_clip(rec.source, start, end, out, copy=copy, limits=limits, progress=progress)


def _scaled(progress: ProgressFn | None, lo: float, hi: float) -> ProgressFn:
    def say(stage: str, frac: float) -> None:
        if progress:
            progress(stage, lo + (hi - lo) * min(1.0, max(0.0, frac)))

    return say


def _candidates(index, req: HighlightRequest, searcher, progress: ProgressFn):
    """(candidates, videos in story order) for the request."""
    from query.highlights import Candidate

    if req.video_id is not None:
        rec = resolve_video(index, req.video_id, req.tenant)
        segs = index.catalog.segments_of(rec.key)
        cands = [Candidate(rec.video_id, s.start, s.end, s.id) for s in segs if s.end > s.start]
        return cands, [rec]
    from query.planner import SearchOptions, Searcher

    progress("search", 0.0)
    searcher = searcher or Searcher(index)
    resp = searcher.search(req.query, options=SearchOptions(k=max(10, 4 * req.max_videos), per_video=20,
                                                            tenant=req.tenant))
    videos: list = []
    cands = []
    by_id = {}
    for h in resp.hits:
        if h.video_id not in by_id:
            if len(by_id) >= req.max_videos:
                continue
            by_id[h.video_id] = resolve_video(index, h.video_id, req.tenant)
            videos.append(by_id[h.video_id])
        for sid, seg in sorted(index.catalog.get_segments(h.segment_ids).items()):
            if seg.end > seg.start:
                cands.append(Candidate(h.video_id, seg.start, seg.end, sid, float(h.score)))
    if not cands:
        raise NotFoundError(f"no indexed moment matches the query {req.query!r}",
                            hint="try other words, or a video id")
    progress("search", 1.0)
    return cands, videos


def _signals(index, rec, cands, progress: ProgressFn):
    from indexer.highlight_features import extract_features
    from query.highlights import VideoSignals

    segs = index.catalog.segments_of(rec.key)
    words: dict[tuple[float, float, str], None] = {}
    for s in segs:
        for w in s.words:
            words[(float(w[0]), float(w[1]), str(w[2]))] = None
    mine = {c.segment_id for c in cands if c.video_id == rec.video_id}
    # Quality at each candidate's keyframes (where the indexer looked) and its middle.
    times = sorted({t for s in segs if s.id in mine for t in (*s.keyframe_times, (s.start + s.end) / 2)})
    f = extract_features(rec.source, quality_times=times, progress=progress)
    return VideoSignals(
        video_id=rec.video_id, source=rec.source, duration=f.duration,
        shots=tuple(index.catalog.shots_of(rec.key)), words=tuple(sorted(words)),
        loudness=f.loudness, onsets=f.onsets, peaks=f.peaks, motion=f.motion, quality=f.quality,
    )


def build_highlight(index, req: HighlightRequest, out: str | os.PathLike[str], *,
                    edl_path: str | os.PathLike[str] | None = None, limits=None,
                    progress: ProgressFn | None = None, searcher=None) -> HighlightResult:
    """Make the reel ``out`` (MP4) for ``req`` from an open index; write the EDL JSON to
    ``edl_path`` when given. ``searcher``: a query.planner.Searcher to reuse (the
    service's); one is built for a query otherwise."""
    from indexer.reel import ReelPiece, render_reel
    from query.highlights import HighlightWeights, score_segments, select_highlights

    cands, videos = _candidates(index, req, searcher, _scaled(progress, 0.0, _SEARCH))
    signals = {}
    span = (_FEATURES - _SEARCH) / len(videos)
    for i, rec in enumerate(videos):
        signals[rec.video_id] = _signals(index, rec, cands, _scaled(progress, _SEARCH + i * span,
                                                                    _SEARCH + (i + 1) * span))
    weights = HighlightWeights()
    has_query = req.query is not None
    scored = score_segments(cands, signals, weights=weights, query=has_query)
    edl = select_highlights(
        scored, signals, target=req.duration, fade=req.fade, order=req.order, max_piece=req.max_piece,
        min_piece=req.min_piece, weights=weights.active(query=has_query), query=req.query, video_id=req.video_id,
    )
    pieces = [ReelPiece(e.source, e.source_in, e.source_out) for e in edl.entries]
    reel = render_reel(pieces, out, fade=req.fade, limits=limits, progress=_scaled(progress, _FEATURES, _RENDER))
    edl = edl.retimed(
        [(p.start, p.end, p.output_in, p.output_out) for p in reel.pieces], reel.fade,
        output={"path": os.path.basename(reel.path), "duration": round(reel.probed_duration, 6),
                "width": reel.width, "height": reel.height, "fps": round(reel.fps, 6), "has_audio": reel.has_audio},
    )
    if edl_path is not None:
        atomic_write_json(Path(edl_path), edl.to_dict())
    if progress:
        progress("done", 1.0)
    return HighlightResult(reel.path, edl, reel)


# -- command line ------------------------------------------------------------------------
def _bar(show: bool):
    from tqdm.auto import tqdm

    bar = tqdm(total=100, disable=not show, leave=False, file=sys.stderr,
               bar_format="{desc:<24.24} {percentage:3.0f}%|{bar}| {elapsed}")

    def say(stage: str, frac: float) -> None:
        bar.set_description_str(stage)
        bar.n = int(round(100 * frac))
        bar.refresh()

    return bar, say


def _limits(args: argparse.Namespace):
    from indexer.export import ExportLimits

    d = ExportLimits()
    return ExportLimits(max_duration_s=args.max_duration or d.max_duration_s, max_bytes=args.max_bytes or d.max_bytes)


def _show_progress(args: argparse.Namespace) -> bool:
    return (not args.quiet and sys.stderr.isatty()) or args.progress


def cmd_clip(args: argparse.Namespace) -> int:
    from engine.index import VideoIndex

    with VideoIndex.open(args.index) as index:
        bar, say = _bar(_show_progress(args))
        try:
            res = clip_video(index, args.video_id, args.start, args.end, args.out, tenant=args.tenant,
                             copy=args.copy, limits=_limits(args), progress=say)
        finally:
            bar.close()
    if args.json:
        print(json.dumps(res.as_dict(), indent=2))
    else:
        p = res.plan
        print(f"wrote {res.path}: {p.start:.3f}-{p.end:.3f} s of {args.video_id} ({res.duration:.3f} s,"
              f" {res.size_bytes / 1e6:.2f} MB); {p.reason}")
    return 0


def cmd_highlight(args: argparse.Namespace) -> int:
    from engine.index import VideoIndex

    req = HighlightRequest(video_id=args.video_id, query=args.query, duration=args.duration, order=args.order,
                           fade=args.fade, tenant=args.tenant, max_videos=args.max_videos)
    with VideoIndex.open(args.index) as index:
        bar, say = _bar(_show_progress(args))
        try:
            res = build_highlight(index, req, args.out, edl_path=args.edl, limits=_limits(args), progress=say)
        finally:
            bar.close()
    if args.json:
        print(json.dumps(res.edl.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(f"wrote {res.path}: {len(res.edl.entries)} pieces, {res.reel.probed_duration:.2f} s"
              f" (target {req.duration:g} s, {res.edl.fade:.2f} s cross-fades)")
        for e in res.edl.entries:
            print(f"  {e.output_in:7.2f}-{e.output_out:7.2f}  {e.video_id} {e.source_in:.2f}-{e.source_out:.2f}"
                  f"  {e.reason}")
        if args.edl:
            print(f"edit decision list: {args.edl}")
    return 0


def _common(s: argparse.ArgumentParser) -> None:
    s.add_argument("--out", required=True, metavar="FILE", help="the MP4 to write")
    s.add_argument("--index", required=True, metavar="DIR")
    s.add_argument("--tenant", help="only this tenant's videos")
    s.add_argument("--max-duration", type=float, metavar="S", help="refuse outputs longer than this (default 600)")
    s.add_argument("--max-bytes", type=int, metavar="N", help="refuse outputs larger than this (default 2 GiB)")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--progress", action="store_true", help="a progress bar even when stderr is not a terminal")


def register(sub) -> None:
    """Add ``clip`` and ``highlight`` to the `vidseek` command."""
    from indexer.export import COPY_MODES
    from query.highlights import ORDERS

    s = sub.add_parser("clip", help="export a time range of an indexed video as MP4")
    s.add_argument("video_id", metavar="VIDEO_ID")
    s.add_argument("--start", type=float, required=True, metavar="S", help="seconds from the start")
    s.add_argument("--end", type=float, required=True, metavar="E", help="seconds from the start (exclusive)")
    s.add_argument("--copy", choices=COPY_MODES, default="auto",
                   help="stream copy: auto (when keyframe-aligned, H.264/AAC), never, always (or fail)")
    _common(s)
    s.set_defaults(func=cmd_clip)

    s = sub.add_parser("highlight", help="make a highlight reel of a video or of a query's best moments")
    s.add_argument("video_id", nargs="?", metavar="VIDEO_ID")
    s.add_argument("--query", help="make the reel from the moments that match this query")
    s.add_argument("--duration", type=float, default=30.0, metavar="S", help="target length (never exceeded)")
    s.add_argument("--order", choices=ORDERS, default="story", help="story (time order) or score (best first)")
    s.add_argument("--fade", type=float, default=0.5, metavar="S", help="cross-fade between pieces (default 0.5)")
    s.add_argument("--max-videos", type=int, default=5, help="a query draws from at most this many videos")
    s.add_argument("--edl", metavar="FILE.json", help="write the edit decision list here")
    _common(s)
    s.set_defaults(func=cmd_highlight)
