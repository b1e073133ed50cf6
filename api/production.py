"""Clips and highlight reels: the library calls behind `vidseek clip` / `vidseek highlight`
and the HTTP routes (``api.routes_production``), with no HTTP and no terminal code.

``clip_video`` resolves a video id in an index to its media and exports a range
(``indexer.export``). ``build_highlight`` wires the highlight parts together: the
candidates come from the catalogue (every segment of one video) or from the query
planner (the segments of the hits, with their scores as relevance); the media
features from ``indexer.highlight_features``; scoring and selection from
``query.highlights``; the reel from ``indexer.reel``; the EDL gets the timing the
renderer actually used. Progress goes to a ``progress(stage, fraction)`` callback.

``run_highlight_job`` is the service's job runner of kind ``highlight``; its reel and
EDL are kept at ``highlight_paths(DIR, tenant, job_id)``.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.atomic import atomic_write_json
from engine.errors import InputError, NotFoundError, UnknownNameError

__all__ = [
    "ProgressFn",
    "HighlightRequest",
    "HighlightResult",
    "resolve_video",
    "clip_video",
    "build_highlight",
    "HIGHLIGHT_KIND",
    "highlight_paths",
    "run_highlight_job",
]

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


MIN_EXACT_PIECE = 2.0  # s: an exact moment shorter than this is widened around its middle for a reel


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
        if h.range_from != "segments" and h.segment_ids:  # an exact moment: the reel takes its range
            mid, half = 0.5 * (h.start + h.end), max(0.5 * (h.end - h.start), MIN_EXACT_PIECE / 2)
            cands.append(Candidate(h.video_id, max(0.0, mid - half), mid + half, h.segment_ids[0], float(h.score)))
            continue
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


# -- the service's highlight jobs -----------------------------------------------------------
HIGHLIGHT_KIND = "highlight"


def highlight_paths(index_dir: str | os.PathLike[str], tenant: str, job_id: str) -> tuple[Path, Path]:
    """Where a highlight job writes its reel and its EDL."""
    folder = Path(index_dir) / "highlights" / tenant
    return folder / f"{job_id}.mp4", folder / f"{job_id}.json"


def run_highlight_job(writer, job_id: str, req, progress: ProgressFn, should_commit: Callable[[], bool], *,
                      limits=None) -> tuple[str, str | None]:
    """A job runner (``api.jobs.JobRunner``) of kind ``highlight``: build the reel that
    ``req.params`` (a HighlightRequest as JSON) asks for with the service's writer handle
    (always current), or a reader while another process holds the writer lock. Nothing is
    committed, so ``should_commit`` has nothing to guard; a shutdown stops the job through
    ``progress`` (which raises), and the renderer kills FFmpeg and removes its file."""
    from engine.index import VideoIndex

    hreq = HighlightRequest.from_dict({**json.loads(req.params or "{}"), "tenant": req.tenant})
    video, edl = highlight_paths(writer.index_dir, req.tenant, job_id)
    video.parent.mkdir(parents=True, exist_ok=True)
    own = None if writer.try_open() else VideoIndex.open(writer.index_dir)
    try:
        build_highlight(own or writer.index, hreq, video, edl_path=edl, limits=limits, progress=progress)
    finally:
        if own is not None:
            own.close()
    return "rendered", hreq.video_id
