"""Thumbnails: each segment's best keyframe as a small JPEG (``indexer.thumbs``), so a
search hit shows a frame of its moment at once. Uses the keyframes the keyframes stage
decoded; with visual and OCR off (no keyframes decoded) it decodes them itself."""
from __future__ import annotations

from indexer.options import IndexOptions
from indexer.stages.base import Stage, Work


class ThumbnailsStage(Stage):
    name = "thumbnails"
    needs = ("segments",)
    adds = ("thumbnails",)
    at = 0.9
    thread_share = 0.0

    @classmethod
    def enabled(cls, options: IndexOptions) -> bool:
        return True

    def applies(self, work: Work) -> bool:
        return any(s.keyframe_times for s in work.segments)

    def run(self, work: Work) -> None:
        from indexer import media
        from indexer.thumbs import encode_jpeg, pick_keyframe

        frames = dict(work.frames)
        frame_time = work.frame_time
        if not frames:
            times = sorted({float(t) for s in work.segments for t in s.keyframe_times})
            decoded = list(media.frames_at(work.source, times, size=640))
            frames = dict(decoded)
            frame_time = dict(zip(times, [t for t, _ in decoded]))
        out: list[bytes | None] = []
        for s in work.segments:
            mine = [frames[a] for t in s.keyframe_times if (a := frame_time.get(float(t))) in frames]
            out.append(encode_jpeg(mine[pick_keyframe(mine)]) if mine else None)
        work.thumbnails = out
