"""Moment thumbnails: one small JPEG per segment, made at ingest from the segment's
best keyframe, stored under the index folder and served by the API.

A search hit's card shows a frame *of the matched moment* (not the video's cover), and
it must show at once: decoding a frame when the page asks for it cost up to seconds on
a busy machine, so the frame is picked and encoded while the video is analysed (the
keyframes are decoded then anyway) and written next to the catalog after the commit.

- ``pick_keyframe(frames)``: the index of the best frame of a segment: well exposed
  (not black, not white), with picture detail (gradient energy), not a flat card;
- ``encode_jpeg(rgb)``: the frame scaled to ``THUMB_SIDE`` on its long side, JPEG;
- ``ThumbStore(index_dir)``: ``thumbs/<video_id>/<segment_id>.jpg``, each written
  atomically (a crash leaves the old file or none; the API then decodes the frame).
"""
from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["THUMB_SIDE", "JPEG_QUALITY", "pick_keyframe", "frame_quality", "encode_jpeg", "ThumbStore"]

# Long side of a stored thumbnail: result cards are 240-400 CSS px wide. At quality 80
# a 320 px frame was 6.7-16 KB on three sample clips (c005, c011, c016), so a million
# segments cost on the order of 10 GB of disk.
THUMB_SIDE = 320
JPEG_QUALITY = 80
# Mean luma (0..255) outside this band is a black or white frame (a fade, a flash).
_DARK, _BRIGHT = 24.0, 235.0
_VIDEO_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def frame_quality(rgb: np.ndarray) -> float:
    """How good a thumbnail a frame makes: picture detail (mean gradient magnitude of the
    luma) plus contrast (its standard deviation), heavily penalised when the frame is
    black or white. Frames are subsampled to about 160 px, so the cost is tiny."""
    step = max(1, max(rgb.shape[:2]) // 160)
    y = rgb[::step, ::step].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    mean = float(y.mean())
    detail = float(np.abs(np.diff(y, axis=0)).mean() + np.abs(np.diff(y, axis=1)).mean()) if min(y.shape) > 1 else 0.0
    score = detail + 0.25 * float(y.std())
    if mean < _DARK or mean > _BRIGHT:
        score -= 1000.0  # only when every frame is black or white does one of these win
    return score


def pick_keyframe(frames: Sequence[np.ndarray]) -> int:
    """The index of the best thumbnail among a segment's keyframes (ties: the earliest)."""
    if not frames:
        raise ValueError("pick_keyframe needs at least one frame")
    scores = [frame_quality(f) for f in frames]
    return int(np.argmax(scores))


def encode_jpeg(rgb: np.ndarray, side: int = THUMB_SIDE, quality: int = JPEG_QUALITY) -> bytes:
    """``rgb`` (H, W, 3 uint8) scaled to ``side`` px on its long side (never up), as JPEG."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(rgb))
    w, h = img.size
    scale = side / max(w, h)
    if scale < 1:
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


class ThumbStore:
    """The stored moment thumbnails of one index: ``<index>/thumbs/<video_id>/<segment_id>.jpg``."""

    def __init__(self, index_dir: str | os.PathLike[str]) -> None:
        self.root = Path(index_dir) / "thumbs"

    def _dir(self, video_id: str) -> Path:
        if not _VIDEO_ID.fullmatch(video_id):  # ids are ours; never build a path from anything else
            raise ValueError(f"not a video id: {video_id!r}")
        return self.root / video_id

    def path(self, video_id: str, segment_id: int) -> Path:
        return self._dir(video_id) / f"{int(segment_id)}.jpg"

    def get(self, video_id: str, segment_id: int) -> Path | None:
        """The stored thumbnail's path, or None when there is none (made before thumbnails
        existed, or a crash between the commit and the write)."""
        try:
            p = self.path(video_id, segment_id)
        except ValueError:
            return None
        return p if p.is_file() else None

    def put_all(self, video_id: str, thumbs: Sequence[tuple[int, bytes]]) -> int:
        """Write ``(segment_id, jpeg)`` pairs, each atomically; returns the bytes written."""
        d = self._dir(video_id)
        d.mkdir(parents=True, exist_ok=True)
        n = 0
        for sid, data in thumbs:
            fd, tmp = tempfile.mkstemp(prefix=".thumb-", dir=d)
            try:
                os.fchmod(fd, 0o644)  # mkstemp makes 0600; these are served like any media file
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, self.path(video_id, sid))
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            n += len(data)
        return n

    def remove(self, video_id: str) -> None:
        """Drop a video's thumbnails (after it is deleted or replaced)."""
        try:
            shutil.rmtree(self._dir(video_id), ignore_errors=True)
        except ValueError:
            pass
