"""Browser-playable previews: every indexed video plays in a web page.

Browsers play H.264/AAC (or MP3) in MP4 and VP8/VP9/AV1 with Vorbis/Opus in WebM; an
MPEG-1 ``.mpg``, a Theora ``.ogg`` (in Chromium), an ``.avi`` or MPEG-4 Part 2 in MP4
gives a dead player. ``plays_in_browser(record)`` decides from the codecs the catalog
holds; for the rest, ``PreviewCache.get(record)`` makes an H.264/AAC MP4 with the
``ffmpeg`` command (at most ``MAX_SIDE`` px high, ``+faststart`` so it seeks at once),
the first time it is asked for, and keeps it under ``<index>/previews/`` keyed by the
file's content hash. The folder has a size budget: after each new preview the least
recently served ones are deleted until the folder fits (the newest always stays). The
original is never touched and stays available (``/v1/videos/{id}/media``).

Each preview is written to a temporary file and renamed into place, so a crash or a
failed ``ffmpeg`` never leaves a half preview; two requests for the same video make it
once (a per-key lock).
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InputError

__all__ = ["plays_in_browser", "media_type_of", "PreviewCache", "PreviewLimits", "DEFAULT_BUDGET_BYTES"]

log = logging.getLogger("vidseek.previews")

# Containers as PyAV names them (indexer.media.probe) -> (video codecs, audio codecs)
# that Chromium, Firefox and Safari all play (Safari: MP4 only; WebM is Chromium/Firefox).
_PLAYABLE = {
    "mov,mp4,m4a,3gp,3g2,mj2": ({"h264"}, {"aac", "mp3", None}),
    "matroska,webm": ({"vp8", "vp9", "av1"}, {"vorbis", "opus", None}),
}
_MEDIA_TYPE = {"mov,mp4,m4a,3gp,3g2,mj2": "video/mp4", "matroska,webm": "video/webm"}
DEFAULT_BUDGET_BYTES = 2 * 1024**3
MAX_SIDE = 720  # previews are for looking, not for editing: 720p keeps them small and quick to make
_HASH = re.compile(r"[0-9a-f]{16,128}")


def plays_in_browser(container: str | None, video_codec: str | None, audio_codec: str | None) -> bool:
    """Whether a browser plays the original file as it is."""
    ok = _PLAYABLE.get(container or "")
    if ok is None:
        return False
    return video_codec in ok[0] and audio_codec in ok[1]


def media_type_of(container: str | None) -> str:
    """The MIME type to serve a playable original with (by content, not by file name)."""
    return _MEDIA_TYPE.get(container or "", "application/octet-stream")


@dataclass(frozen=True)
class PreviewLimits:
    """``budget_bytes``: the most the preview folder may hold; ``max_duration_s``: the
    longest video a preview is made for on request (a longer one would keep an HTTP
    request waiting for minutes: download the original instead)."""

    budget_bytes: int = DEFAULT_BUDGET_BYTES
    max_duration_s: float = 3 * 3600.0

    def __post_init__(self) -> None:
        if self.budget_bytes < 1:
            raise InputError(f"preview budget {self.budget_bytes!r} must be a positive number of bytes",
                             hint="e.g. 2147483648 for 2 GiB")
        if not self.max_duration_s > 0:
            raise InputError(f"preview max_duration_s {self.max_duration_s!r} must be positive")


class PreviewCache:
    """The previews of one index: ``<index>/previews/<content_hash>.mp4`` within a size budget."""

    def __init__(self, index_dir: str | os.PathLike[str], limits: PreviewLimits | None = None) -> None:
        self.root = Path(index_dir) / "previews"
        self.limits = limits or PreviewLimits()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def path(self, content_hash: str) -> Path:
        if not _HASH.fullmatch(content_hash):
            raise ValueError(f"not a content hash: {content_hash!r}")
        return self.root / f"{content_hash}.mp4"

    def cached(self, content_hash: str) -> Path | None:
        p = self.path(content_hash)
        return p if p.is_file() else None

    def get(self, source: str, content_hash: str, duration: float | None, has_audio: bool) -> Path:
        """The preview of ``source`` (made now if it is not cached); marks it as used."""
        from indexer.export import FFMPEG_X264, run_ffmpeg

        out = self.path(content_hash)
        with self._guard:
            lock = self._locks.setdefault(content_hash, threading.Lock())
        with lock:
            if out.is_file():
                _touch(out)
                return out
            if duration and duration > self.limits.max_duration_s:
                raise InputError(
                    f"the video is {duration:.0f} s long, over the {self.limits.max_duration_s:.0f} s for which a"
                    " preview is made on request", hint="download the original (media_url) and play it locally")
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / f".{content_hash}.{os.getpid()}.{threading.get_ident()}.mp4"
            args = [
                # like the indexer, play through damaged packets (c016.ogg has 90 bad
                # Vorbis packets: ffmpeg's default gives up past 2/3 failed frames)
                "-max_error_rate", "1",
                "-i", source, "-map", "0:v:0", *(["-map", "0:a:0"] if has_audio else []),
                "-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1",
                # at most MAX_SIDE high, never upscaled; 4:2:0 needs even sizes
                "-vf", f"scale=-2:'min({MAX_SIDE},trunc(ih/2)*2)'", *FFMPEG_X264, "-crf", "23",
                *(("-c:a", "aac", "-b:a", "128k", "-ac", "2") if has_audio else ("-an",)),
                # the catalog's duration is the picture's (damaged audio can carry timestamps
                # far past it: c016.ogg's made a 102 s preview of an 8 s video)
                *(["-t", f"{duration:.3f}"] if duration else []),
                "-movflags", "+faststart", "-f", "mp4",
            ]
            t0 = time.perf_counter()
            try:
                run_ffmpeg(args, out=tmp, expected_duration=float(duration or 0.0),
                           max_bytes=self.limits.budget_bytes, what="the preview")
                os.replace(tmp, out)
            finally:
                tmp.unlink(missing_ok=True)
            log.info("preview of %s made in %.1f s (%d bytes)", source, time.perf_counter() - t0,
                     out.stat().st_size)
            self.evict(keep=out)
            return out

    def usage(self) -> int:
        """Bytes the previews hold now."""
        return sum(p.stat().st_size for p in self.root.glob("*.mp4")) if self.root.is_dir() else 0

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Delete the least recently served previews until the folder fits the budget."""
        if not self.root.is_dir():
            return []
        files = []
        for p in self.root.glob("*.mp4"):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            files.append((st.st_mtime, st.st_size, p))
        total = sum(s for _, s, _ in files)
        removed: list[Path] = []
        for _, size, p in sorted(files, key=lambda x: (x[0], x[2].name)):
            if total <= self.limits.budget_bytes:
                break
            if keep is not None and p == keep:
                continue
            p.unlink(missing_ok=True)
            total -= size
            removed.append(p)
        return removed


def _touch(p: Path) -> None:
    """Mark a preview as just served (the eviction order is by modification time, which,
    unlike access time, every mount keeps)."""
    try:
        os.utime(p)
    except OSError:
        pass
