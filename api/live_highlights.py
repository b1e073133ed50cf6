"""A highlight reel of a live video, kept up to date as its windows are committed.

``follow_live_reel`` watches one video of an index (a reader handle, synced each turn)
and rebuilds its reel (``api.production.build_highlight``: the same candidates,
scoring, selection, render and EDL as `vidseek highlight VIDEO_ID`) whenever the video
has grown since the last build, at most every ``every`` seconds, until the video is
no longer live (one last build after its finalisation) or ``stop`` is set. The reel
and EDL are replaced atomically, and ``<reel>.live.json`` says how far the reel has
got (for the web page ``/live`` and ``GET /v1/live/{id}``).

The reel is rebuilt from the whole video each time (its media features are read
again), so an update costs time in proportion to the video's length so far.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from engine.atomic import atomic_write_json
from engine.errors import InputError, NotFoundError

__all__ = ["LiveReelStatus", "follow_live_reel", "status_path"]

log = logging.getLogger("vidseek.live")


@dataclass
class LiveReelStatus:
    """How far a live reel has got."""

    video_id: str
    reel: str
    edl: str
    state: str = "waiting"  # waiting | live | done | stopped | failed
    updates: int = 0
    video_duration: float = 0.0  # seconds of the video the last build saw
    video_status: str | None = None
    reel_duration: float = 0.0
    pieces: list = field(default_factory=list)  # [[source_in, source_out], ...] of the last build
    updated_at: float | None = None
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def status_path(reel: str | os.PathLike[str]) -> Path:
    return Path(str(reel) + ".live.json")


def _build(index, req, rec, st: LiveReelStatus, out, edl, limits) -> None:
    """Rebuild the reel of ``rec`` as it is now; ``st`` records the outcome."""
    from api.production import build_highlight

    try:
        res = build_highlight(index, req, out, edl_path=edl, limits=limits)
    except InputError as e:  # e.g. too little video yet for one piece
        st.error = str(e)
    else:
        st.error = None
        st.updates += 1
        st.reel_duration = round(res.reel.probed_duration, 3)
        st.pieces = [[round(e.source_in, 3), round(e.source_out, 3)] for e in res.edl.entries]
    st.state = "live" if rec.status == "live" else "done"
    st.video_duration, st.video_status, st.updated_at = float(rec.duration or 0), rec.status, time.time()


def follow_live_reel(index_dir: str | os.PathLike[str], video_id: str, out: str | os.PathLike[str], *,
                     edl: str | os.PathLike[str] | None = None, duration: float = 30.0, fade: float = 0.5,
                     order: str = "story", tenant: str | None = None, every: float = 10.0,
                     stop: threading.Event | None = None, on_update: Callable[[LiveReelStatus], None] | None = None,
                     limits=None, wait_for_video: float = 60.0) -> LiveReelStatus:
    """Keep ``out`` (MP4) and ``edl`` (JSON) the reel of the best moments of ``video_id``
    so far; returns the last status. ``wait_for_video``: seconds to wait for a video id
    that is not committed yet (a live run's first window) before NotFoundError."""
    from api.production import HighlightRequest
    from engine.index import VideoIndex

    if not (every > 0):
        raise InputError(f"every={every!r} must be a positive number of seconds", hint="e.g. --every 10")
    stop = stop or threading.Event()
    edl = edl or Path(str(out) + ".edl.json")
    req = HighlightRequest(video_id=video_id, duration=duration, fade=fade, order=order, tenant=tenant)
    st = LiveReelStatus(video_id, str(out), str(edl))
    seen = None
    t_wait = time.monotonic()

    def publish() -> None:
        atomic_write_json(status_path(out), st.as_dict())
        if on_update is not None:
            on_update(st)

    index = VideoIndex.open(index_dir)
    try:
        while not stop.is_set():
            index.sync()
            try:
                rec = index.catalog.get_video(video_id, tenant=tenant)
            except NotFoundError:
                if time.monotonic() - t_wait > wait_for_video:
                    raise
                stop.wait(min(every, 1.0))
                continue
            mark = (rec.duration, rec.status, rec.updated_at)
            if mark != seen and index.catalog.segments_of(rec.key):
                seen = mark
                _build(index, req, rec, st, out, edl, limits)
                publish()
            if rec.status != "live" and seen == mark:
                if st.state != "done":
                    st.state = "done"
                    publish()
                return st
            stop.wait(every)
        st.state = "stopped"
        publish()
        return st
    except BaseException as e:
        st.state, st.error = "failed", f"{type(e).__name__}: {e}"
        publish()
        raise
    finally:
        index.close()
